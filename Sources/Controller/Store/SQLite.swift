import Foundation
internal import CSQLite
import Shared

/// An SQLite error with the statement's text where there was one.
package struct StoreError: Error, Sendable, CustomStringConvertible {
    package var code: Int32
    package var message: String
    package var description: String { "sqlite \(code): \(message)" }
}

/// A value bound to or read from a statement.
package enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case text(String)
    case blob([UInt8])
    case real(Double)

    package var int: Int64? { if case .int(let v) = self { v } else { nil } }
    package var text: String? { if case .text(let v) = self { v } else { nil } }
    package var blob: [UInt8]? { if case .blob(let v) = self { v } else { nil } }
    /// A REAL column (an INTEGER one reads as its value).
    package var real: Double? {
        switch self {
        case .real(let v): v
        case .int(let v): Double(v)
        default: nil
        }
    }
}

package typealias SQLRow = [SQLValue]

/// Owns one `sqlite3*` connection. Not thread-safe by itself: `Store` keeps it
/// behind a mutex, which is why it may be `@unchecked Sendable`.
package final class SQLiteConnection: @unchecked Sendable {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    /// `readOnly`: a reader of an existing register (Store.read); the writer
    /// has already put it in WAL mode, which is persistent.
    package init(path: String, readOnly: Bool = false) throws {
        let flags = readOnly ? SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            db = nil
            throw StoreError(code: rc, message: "\(path): \(message)")
        }
        sqlite3_busy_timeout(db, 5000)
        if readOnly { return }
        // WAL: readers never block the writer; NORMAL sync is durable in WAL
        // mode except for the last transactions before a power loss.
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for stmt in statements.values { sqlite3_finalize(stmt) }
        sqlite3_close(db)
    }

    private func error(_ rc: Int32, _ sql: String? = nil) -> StoreError {
        let message = String(cString: sqlite3_errmsg(db))
        return StoreError(code: rc, message: sql.map { "\(message) in: \($0)" } ?? message)
    }

    /// Runs one or more statements without parameters or results.
    package func execute(_ sql: String) throws {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? "error"
            sqlite3_free(errmsg)
            throw StoreError(code: rc, message: "\(message) in: \(sql)")
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let stmt = statements[sql] {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
            return stmt
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql) }
        statements[sql] = stmt
        return stmt
    }

    private func bind(_ stmt: OpaquePointer, _ params: [SQLValue]) throws {
        for (i, value) in params.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(stmt, index)
            case .int(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, index, v)
            case .text(let v): rc = sqlite3_bind_text(stmt, index, v, -1, lanyard_sqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32($0.count), lanyard_sqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw error(rc) }
        }
    }

    /// Runs a statement and returns every row.
    @discardableResult
    package func query(_ sql: String, _ params: [SQLValue] = []) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        try forEachRow(sql, params) { rows.append($0) }
        return rows
    }

    /// Runs a statement and hands `body` each row as it is read, for scans
    /// whose rows need not be held together (a check over every certificate
    /// of a 100,000-device register). `body` may run other statements on this
    /// connection, but not this one.
    package func forEachRow(_ sql: String, _ params: [SQLValue] = [], _ body: (SQLRow) throws -> Void) throws {
        let stmt = try prepared(sql)
        defer { sqlite3_reset(stmt) }
        try bind(stmt, params)
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, sql) }
            var row: SQLRow = []
            for col in 0..<sqlite3_column_count(stmt) {
                switch sqlite3_column_type(stmt, col) {
                case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(stmt, col)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(stmt, col)))
                case SQLITE_TEXT: row.append(.text(String(cString: sqlite3_column_text(stmt, col))))
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(stmt, col))
                    if count == 0 { row.append(.blob([])) } else {
                        let ptr = sqlite3_column_blob(stmt, col)!
                        row.append(.blob(Array(UnsafeRawBufferPointer(start: ptr, count: count))))
                    }
                default: row.append(.null)
                }
            }
            try body(row)
        }
    }

    package var changes: Int { Int(sqlite3_changes(db)) }

    /// Whether a transaction is open (SQLite rolls one back by itself after some errors).
    package var isInTransaction: Bool { sqlite3_get_autocommit(db) == 0 }

    /// Runs `body` in one IMMEDIATE transaction; rolls back if it throws.
    package func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}
