import Foundation
import Shared

/// The controller's register in one SQLite file (WAL). Every access goes
/// through `withConnection`, which serialises callers: the MQTT handler and the
/// admin API run on different threads.
package final class Store: @unchecked Sendable {
    // `connection` is only used while `lock` is held.
    private let connection: SQLiteConnection
    private let lock = NSLock()

    package init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        try Store.migrate(connection)
    }

    package func withConnection<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(connection)
    }

    package func transaction<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try withConnection { db in try db.transaction { try body(db) } }
    }

    static let schemaVersion: Int64 = 5

    private static func migrate(_ db: SQLiteConnection) throws {
        let version = try db.query("PRAGMA user_version").first?.first?.int ?? 0
        guard version < schemaVersion else { return }
        if version < 1 { try createVersion1(db) }
        if version < 2 {
            // v2: the audit trail becomes a hash chain.
            try db.transaction {
                try AuditChain.migrate(db)
                try db.execute("PRAGMA user_version = 2")
            }
        }
        // v3: the governed register.
        if version < 3 { try SchemaV3.migrate(db) }
        // v4: rotation campaigns.
        if version < 4 { try SchemaV4.migrate(db) }
        // v5: issuing-CA generations and CA rotations.
        if version < 5 { try SchemaV5.migrate(db) }
    }

    private static func createVersion1(_ db: SQLiteConnection) throws {
        try db.transaction {
            try db.execute("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE devices (
                id TEXT PRIMARY KEY,
                class TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('registered', 'approved', 'active', 'revoked')),
                created_at INTEGER NOT NULL,
                approved_at INTEGER,
                revoked_at INTEGER,
                revocation_reason TEXT,
                last_seen INTEGER,
                reported_state TEXT,
                command_seq INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE owners (
                device_id TEXT NOT NULL REFERENCES devices(id),
                role TEXT NOT NULL,
                owner TEXT NOT NULL,
                PRIMARY KEY (device_id, role)
            );
            CREATE TABLE enrollment_tokens (
                token_hash TEXT PRIMARY KEY,
                device_id TEXT NOT NULL REFERENCES devices(id),
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at INTEGER
            );
            CREATE TABLE certificates (
                serial TEXT PRIMARY KEY,
                device_id TEXT NOT NULL REFERENCES devices(id),
                kind TEXT NOT NULL CHECK (kind IN ('enroll', 'renew')),
                request_id TEXT NOT NULL,
                key_fingerprint TEXT NOT NULL,
                not_before INTEGER NOT NULL,
                not_after INTEGER NOT NULL,
                issued_at INTEGER NOT NULL,
                chain_pem TEXT NOT NULL,
                revoked_at INTEGER,
                revocation_reason INTEGER
            );
            CREATE INDEX certificates_by_device ON certificates(device_id, issued_at);
            CREATE INDEX certificates_by_key ON certificates(key_fingerprint);
            CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at IS NOT NULL;
            CREATE TABLE commands (
                jti TEXT PRIMARY KEY,
                device_id TEXT NOT NULL REFERENCES devices(id),
                seq INTEGER NOT NULL,
                cmd TEXT NOT NULL,
                sent_at INTEGER NOT NULL,
                outcome TEXT,
                outcome_code TEXT,
                acked_at INTEGER
            );
            CREATE TABLE audit (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                time INTEGER NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL
            );
            PRAGMA user_version = 1;
            """)
        }
    }
}

extension SQLiteConnection {
    package func meta(_ key: String) throws -> String? {
        try query("SELECT value FROM meta WHERE key = ?", [.text(key)]).first?.first?.text
    }

    package func setMeta(_ key: String, _ value: String) throws {
        try query("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
    }

    /// Appends to the hash-chained audit trail (who, what, on which target, outcome, detail).
    package func audit(time: Date, actor: String, action: String, target: String, outcome: String, detail: String = "") throws {
        try AuditChain.append(self, time: time, actor: actor, action: action, target: target, outcome: outcome, detail: detail)
    }
}
