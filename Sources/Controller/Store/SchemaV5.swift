import Foundation
import Shared

/// Schema v5: issuing-CA generations and CA rotations; the campaign ramp
/// and abort failure type. A rotation is a
/// persisted sequence of phases (trust the new CA everywhere, issue from it,
/// re-issue every device, retire the old one); `ca_rotation_devices` holds
/// each device's trust-bundle commands so a restarted controller resumes
/// without sending them twice.
enum SchemaV5 {
    static func migrate(_ db: SQLiteConnection) throws {
        try db.transaction {
            try db.execute("""
            CREATE TABLE ca_generations (
                generation INTEGER PRIMARY KEY,
                common_name TEXT NOT NULL,
                serial TEXT NOT NULL,
                not_after INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retiring', 'retired')),
                created_at INTEGER NOT NULL,
                activated_at INTEGER,
                retired_at INTEGER
            );
            CREATE TABLE ca_rotations (
                id TEXT PRIMARY KEY,
                from_generation INTEGER NOT NULL,
                to_generation INTEGER NOT NULL,
                phase TEXT NOT NULL CHECK (phase IN ('trusting', 'reissuing', 'retiring', 'stalled', 'completed')),
                phase_started_at INTEGER NOT NULL,
                bundle_timeout INTEGER NOT NULL,
                max_per_minute INTEGER NOT NULL,
                device_timeout INTEGER NOT NULL,
                campaign_id TEXT,
                reason TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                ended_at INTEGER,
                detail TEXT
            );
            CREATE TABLE ca_rotation_devices (
                rotation_id TEXT NOT NULL REFERENCES ca_rotations(id),
                step TEXT NOT NULL CHECK (step IN ('trust', 'final')),
                device_id TEXT NOT NULL REFERENCES devices(id),
                jti TEXT,
                sent_at INTEGER,
                PRIMARY KEY (rotation_id, step, device_id)
            );
            -- Campaigns: an exponential ramp of the rate, and which failures count toward the abort threshold.
            ALTER TABLE campaigns ADD COLUMN ramp_base INTEGER;
            ALTER TABLE campaigns ADD COLUMN ramp_factor REAL;
            ALTER TABLE campaigns ADD COLUMN ramp_every INTEGER;
            ALTER TABLE campaigns ADD COLUMN abort_failure_type TEXT;
            -- One CRL per issuing CA, and the rotation's "who still holds an old certificate".
            CREATE INDEX IF NOT EXISTS certificates_by_issuer ON certificates(issuer, revoked_at);
            PRAGMA user_version = 5;
            """)
        }
    }
}
