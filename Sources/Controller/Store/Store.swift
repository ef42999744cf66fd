import Foundation
import Shared

/// The controller's register in one SQLite file (WAL). Every write goes
/// through `withConnection` or `transaction`, which serialise callers on one
/// connection: the MQTT workers and the admin API run on different threads.
///
/// **Group commit.** `transaction` bodies of concurrent callers share one
/// SQLite transaction: each body runs in its own SAVEPOINT (a body that
/// throws undoes only its own writes), and whoever finds nobody waiting
/// behind it commits the batch, once, for everybody — one fsync instead of
/// one per caller. No `transaction` returns before the COMMIT that made its
/// writes durable has succeeded (a failed COMMIT is thrown to every member).
/// `withConnection` commits an open batch before it runs, so it always sees
/// (and works on) committed data only.
///
/// **Readers.** `read` runs on one of a few read-only connections (WAL
/// readers never wait for the writer): it sees committed data only, so a
/// check made there never relies on a write that might still roll back.
package final class Store: @unchecked Sendable {
    // `connection` is only used by the caller that holds `busy`; the batch
    // fields below are only touched by that caller too. `busy`, `waiting` and
    // `transactionCount` are guarded by `state`; `settled`, `failures` and
    // `commitCount` by `commits`. Two conditions, so that handing the
    // connection on wakes one queued caller, not every member waiting for its
    // COMMIT as well (with 16 workers on 2 cores that herd of wake-ups cost
    // about a sixth of the concurrent enroll path; docs/benchmarks.md 12.8).
    private let connection: SQLiteConnection
    private let path: String
    private let state = NSCondition()
    private let commits = NSCondition()
    private var busy = false
    private var waiting = 0
    private var batchOpen = false
    private var batchID: UInt64 = 0
    private var batchSize = 0
    private var batchWaiters = 0
    private var settled: UInt64 = 0
    private var failures: [UInt64: (error: any Error, waiters: Int)] = [:]
    private var transactionCount = 0
    private var commitCount = 0
    /// At most this many transactions share one COMMIT.
    static let maxBatch = 64

    // Idle read-only connections, guarded by `readersLock`.
    private var readers: [SQLiteConnection] = []
    private let readersLock = NSLock()

    package init(path: String) throws {
        self.path = path
        connection = try SQLiteConnection(path: path)
        try Store.migrate(connection)
    }

    private func acquire() {
        state.lock()
        waiting += 1
        while busy { state.wait() }
        waiting -= 1
        busy = true
        state.unlock()
    }

    private func release() {
        state.lock()
        busy = false
        state.signal()
        state.unlock()
    }

    /// Exclusive use of the connection, outside any batch (an open one is committed first).
    package func withConnection<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        acquire()
        defer { release() }
        if batchOpen { try? commitBatch() }  // a failed COMMIT is thrown to the batch's members
        return try body(connection)
    }

    /// Runs `body` atomically and returns once its writes are committed
    /// (possibly in one COMMIT with other callers' transactions).
    package func transaction<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        acquire()
        if !batchOpen {
            do { try connection.execute("BEGIN IMMEDIATE") } catch {
                release()
                throw error
            }
            batchOpen = true
            batchID &+= 1
            batchSize = 0
            batchWaiters = 0
        }
        let mine = batchID
        let result: Result<T, any Error>
        do {
            try connection.execute("SAVEPOINT member")
            do {
                let value = try body(connection)
                try connection.execute("RELEASE member")
                result = .success(value)
            } catch {
                // Undo this member's writes only. If SQLite already rolled the
                // whole transaction back (I/O error, disk full), the batch is lost.
                guard connection.isInTransaction, (try? connection.execute("ROLLBACK TO member; RELEASE member")) != nil else {
                    throw BatchLost(error: error)
                }
                result = .failure(error)
            }
        } catch let lost as BatchLost {
            abortBatch(lost.error)
            release()
            throw lost.error
        } catch {
            // SAVEPOINT itself failed.
            abortBatch(error)
            release()
            throw error
        }
        batchSize += 1

        state.lock()
        transactionCount += 1
        if waiting > 0 && batchSize < Store.maxBatch {
            // Someone is queued for the connection: they extend the batch or
            // commit it. Wait for that COMMIT before answering.
            if case .success = result { batchWaiters += 1 }
            busy = false
            state.signal()
            state.unlock()
            if case .success = result {
                commits.lock()
                while settled < mine { commits.wait() }
                if let failure = failures[mine] {
                    if failure.waiters <= 1 { failures[mine] = nil } else { failures[mine] = (failure.error, failure.waiters - 1) }
                    commits.unlock()
                    throw failure.error
                }
                commits.unlock()
            }
            return try result.get()
        }
        state.unlock()
        defer { release() }
        do { try commitBatch() } catch {
            if case .success = result { throw error }
        }
        return try result.get()
    }

    /// Commits the open batch and wakes its waiting members (caller holds `busy`).
    private func commitBatch() throws {
        batchOpen = false
        var failure: (any Error)?
        do { try connection.execute("COMMIT") } catch {
            failure = error
            if connection.isInTransaction { try? connection.execute("ROLLBACK") }
        }
        settle(batchID, failure)
        if let failure { throw failure }
    }

    /// The open batch cannot be committed: roll back what is left and fail its waiting members.
    private func abortBatch(_ error: any Error) {
        batchOpen = false
        if connection.isInTransaction { try? connection.execute("ROLLBACK") }
        settle(batchID, error)
    }

    /// Transactions run and COMMITs made by `transaction` since start (benchmarks).
    package var groupCommitCounts: (transactions: Int, commits: Int) {
        let transactions = state.withLock { transactionCount }
        return (transactions, commits.withLock { commitCount })
    }

    private func settle(_ id: UInt64, _ failure: (any Error)?) {
        commits.lock()
        commitCount += 1
        if let failure, batchWaiters > 0 { failures[id] = (failure, batchWaiters) }
        batchWaiters = 0
        settled = id
        commits.broadcast()
        commits.unlock()
    }

    private struct BatchLost: Error { let error: any Error }

    /// Reads committed data on a read-only connection, in one read
    /// transaction (a consistent snapshot), without waiting for the writer.
    /// Never write here, and never call it from inside `transaction`'s body
    /// expecting to see that transaction's writes.
    package func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        readersLock.lock()
        let pooled = readers.popLast()
        readersLock.unlock()
        let reader = try pooled ?? SQLiteConnection(path: path, readOnly: true)
        defer {
            readersLock.lock()
            if readers.count < Store.maxReaders { readers.append(reader) }
            readersLock.unlock()
        }
        try reader.execute("BEGIN")
        do {
            let value = try body(reader)
            try reader.execute("COMMIT")
            return value
        } catch {
            try? reader.execute("ROLLBACK")
            throw error
        }
    }

    /// Idle read connections kept open.
    static let maxReaders = 8

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
