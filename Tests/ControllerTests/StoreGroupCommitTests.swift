import Foundation
import Synchronization
import Testing

@testable import Controller
import Shared

@Suite("Store: group commit of concurrent transactions, read-only readers")
struct StoreGroupCommitTests {
    private static func withStore(_ body: (Store, String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-gc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/lanyard.db"
        let store = try Store(path: path)
        try store.withConnection { try $0.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)") }
        try body(store, path)
    }

    @Test("800 transactions from 16 threads: every one that returned is committed (a fresh connection sees it), failures leave nothing, the audit chain verifies")
    func concurrentTransactions() throws {
        try Self.withStore { store, path in
            let failed = Mutex<[Int]>([])
            let returned = Mutex<[Int]>([])
            DispatchQueue.concurrentPerform(iterations: 16) { worker in
                for i in 0..<50 {
                    let k = worker * 1000 + i
                    do {
                        try store.transaction { db in
                            try db.query("INSERT INTO t(k, v) VALUES (?, ?)", [.int(Int64(k)), .text("w\(worker)")])
                            try db.audit(time: Date(), actor: "test", action: "insert", target: "\(k)", outcome: "ok")
                            // Every seventh body fails after writing: only its own writes are undone.
                            if i % 7 == 3 { throw WireError(.badRequest, "refused \(k)") }
                        }
                        // Durable and visible to another connection as soon as transaction returns.
                        let seen = try SQLiteConnection(path: path, readOnly: true).query("SELECT v FROM t WHERE k = ?", [.int(Int64(k))])
                        #expect(seen.count == 1)
                        returned.withLock { $0.append(k) }
                    } catch let error as WireError {
                        #expect(error.code == "bad_request")
                        failed.withLock { $0.append(k) }
                    } catch {
                        Issue.record("unexpected \(error)")
                    }
                }
            }
            let ok = returned.withLock { $0 }, bad = failed.withLock { $0 }
            #expect(ok.count + bad.count == 800)
            #expect(bad.count == 16 * 7)
            let rows = try store.read { try $0.query("SELECT k FROM t ORDER BY k") }.compactMap { $0[0].int }
            #expect(rows == ok.sorted().map(Int64.init))
            let audited = try store.read { try $0.query("SELECT count(*) FROM audit WHERE action = 'insert'") }.first?.first?.int
            #expect(audited == Int64(ok.count))
            #expect(try store.read { try AuditChain.verify($0) }.ok)
            let counts = store.groupCommitCounts
            #expect(counts.transactions == 800 && counts.commits >= 1 && counts.commits <= 800)
            print("group commit: \(counts.transactions) transactions in \(counts.commits) commits")
        }
    }

    @Test("a reader sees committed data only; withConnection works on committed data")
    func readersSeeCommitted() throws {
        try Self.withStore { store, _ in
            try store.transaction { try $0.query("INSERT INTO t(k, v) VALUES (1, 'a')") }
            #expect(try store.read { try $0.query("SELECT v FROM t WHERE k = 1") }.first?.first?.text == "a")
            try store.withConnection { try $0.query("UPDATE t SET v = 'b' WHERE k = 1") }
            #expect(try store.read { try $0.query("SELECT v FROM t WHERE k = 1") }.first?.first?.text == "b")
            // A reader refuses writes.
            #expect(throws: StoreError.self) { try store.read { try $0.query("INSERT INTO t(k, v) VALUES (2, 'c')") } }
        }
    }
}
