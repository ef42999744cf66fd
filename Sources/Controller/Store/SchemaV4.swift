import Foundation
import Shared

/// Schema v4: rotation campaigns and their per-device executions, and an
/// index on enrollment tokens by device. Each
/// execution row is the campaign's memory of one device: a controller killed
/// mid-campaign resumes from these rows without skipping or repeating one.
enum SchemaV4 {
    static func migrate(_ db: SQLiteConnection) throws {
        try db.transaction {
            try db.execute("""
            CREATE TABLE campaigns (
                id TEXT PRIMARY KEY,
                trigger TEXT NOT NULL,
                reason TEXT NOT NULL,
                selector TEXT NOT NULL,
                max_per_minute INTEGER NOT NULL,
                canary INTEGER NOT NULL DEFAULT 0,
                abort_failure_pct REAL,
                abort_min_executed INTEGER NOT NULL DEFAULT 1,
                device_timeout INTEGER NOT NULL,
                retries INTEGER NOT NULL DEFAULT 0,
                window_seconds INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'completed', 'aborted', 'cancelled')),
                created_by TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                started_at INTEGER,
                ended_at INTEGER,
                end_reason TEXT
            );
            CREATE TABLE campaign_devices (
                campaign_id TEXT NOT NULL REFERENCES campaigns(id),
                device_id TEXT NOT NULL REFERENCES devices(id),
                position INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('queued', 'waiting', 'sent', 'succeeded', 'failed', 'timed_out', 'skipped')),
                attempts INTEGER NOT NULL DEFAULT 0,
                jti TEXT,
                sent_at INTEGER,
                issued_serial TEXT,
                code TEXT,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (campaign_id, device_id)
            );
            CREATE INDEX campaign_devices_by_state ON campaign_devices(campaign_id, state, position);
            CREATE INDEX campaign_devices_by_device ON campaign_devices(device_id, state);
            -- approve and revoke delete a device's unused tokens: without this
            -- index each one scanned the whole table (approval fell from 370/s
            -- to 110/s by 28,000 devices, docs/benchmarks.md).
            CREATE INDEX IF NOT EXISTS enrollment_tokens_by_device ON enrollment_tokens(device_id);
            PRAGMA user_version = 4;
            """)
        }
    }
}
