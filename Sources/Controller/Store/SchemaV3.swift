import Foundation
import Shared

/// Schema v3: the governed register. Devices gain inventory fields and the
/// suspended and retired states; class policies, vendors, exceptions and
/// operators get their own tables. Existing rows and the audit chain are kept
/// as they are (the audit table is not touched).
enum SchemaV3 {
    static func migrate(_ db: SQLiteConnection) throws {
        // The state CHECK constraint cannot be altered in place: rebuild the
        // table (SQLite's documented 12-step procedure). Foreign keys must be
        // off for the drop and rename, and that pragma is a no-op inside a
        // transaction.
        try db.execute("PRAGMA foreign_keys=OFF")
        defer { try? db.execute("PRAGMA foreign_keys=ON") }
        try db.transaction {
            try db.execute("""
            CREATE TABLE devices_v3 (
                id TEXT PRIMARY KEY,
                class TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('registered', 'approved', 'active', 'suspended', 'revoked', 'retired')),
                created_at INTEGER NOT NULL,
                approved_at INTEGER,
                revoked_at INTEGER,
                revocation_reason TEXT,
                last_seen INTEGER,
                reported_state TEXT,
                command_seq INTEGER NOT NULL DEFAULT 0,
                vendor TEXT,
                model TEXT,
                hardware_serial TEXT,
                firmware TEXT,
                site TEXT,
                zone TEXT CHECK (zone IS NULL OR zone IN ('it', 'ot')),
                tags TEXT NOT NULL DEFAULT '',
                bootstrap_method TEXT NOT NULL DEFAULT 'token',
                suspended_at INTEGER,
                retired_at INTEGER,
                replaces TEXT,
                replaced_by TEXT,
                rotation_required TEXT,
                revocation_published_at INTEGER
            );
            INSERT INTO devices_v3(id, class, state, created_at, approved_at, revoked_at, revocation_reason, last_seen, reported_state, command_seq)
                SELECT id, class, state, created_at, approved_at, revoked_at, revocation_reason, last_seen, reported_state, command_seq FROM devices;
            DROP TABLE devices;
            ALTER TABLE devices_v3 RENAME TO devices;
            CREATE INDEX devices_by_state ON devices(state);
            CREATE INDEX devices_by_class ON devices(class);
            CREATE INDEX owners_by_owner ON owners(role, owner);

            ALTER TABLE certificates ADD COLUMN issuer TEXT;
            ALTER TABLE certificates ADD COLUMN policy_version INTEGER;

            CREATE TABLE class_policies (
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                policy TEXT NOT NULL,
                recorded_at INTEGER NOT NULL,
                recorded_by TEXT NOT NULL,
                PRIMARY KEY (name, version)
            );
            CREATE TABLE vendors (
                name TEXT PRIMARY KEY,
                support_end INTEGER,
                vendor_managed INTEGER NOT NULL DEFAULT 0,
                clause_issuance INTEGER NOT NULL DEFAULT 0,
                clause_rotation INTEGER NOT NULL DEFAULT 0,
                clause_revocation INTEGER NOT NULL DEFAULT 0,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE exceptions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                device_id TEXT REFERENCES devices(id),
                selector TEXT,
                control TEXT NOT NULL,
                ttl INTEGER,
                justification TEXT NOT NULL,
                compensating TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                requested_by TEXT NOT NULL,
                requested_at INTEGER NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
                decided_by TEXT,
                decided_at INTEGER,
                decision_reason TEXT,
                CHECK ((device_id IS NULL) <> (selector IS NULL))
            );
            CREATE TABLE reviews (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                started_at INTEGER NOT NULL,
                started_by TEXT NOT NULL,
                due_at INTEGER NOT NULL
            );
            CREATE TABLE review_items (
                review_id INTEGER NOT NULL REFERENCES reviews(id),
                device_id TEXT NOT NULL REFERENCES devices(id),
                owner TEXT NOT NULL,
                decision TEXT CHECK (decision IS NULL OR decision IN ('keep', 'retire')),
                decided_by TEXT,
                decided_at INTEGER,
                note TEXT,
                PRIMARY KEY (review_id, device_id)
            );
            CREATE TABLE operators (
                name TEXT PRIMARY KEY,
                roles TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL,
                created_by TEXT NOT NULL
            );
            """)
            let broken = try db.query("PRAGMA foreign_key_check")
            guard broken.isEmpty else { throw StoreError(code: 19, message: "schema v3 migration: \(broken.count) dangling references") }
            try db.execute("PRAGMA user_version = 3")
        }
    }
}
