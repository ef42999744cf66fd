import Foundation
import Testing
@testable import Controller
import Shared

/// The audit trail is a hash chain: tampering with the SQLite file through an
/// independent client (`/usr/bin/sqlite3`) is found and named by `verify`.
@Suite("Audit trail hash chain")
struct AuditChainTests {
    /// A register with some history: adds, approvals, an enrollment, a refusal.
    func fixtureWithHistory() throws -> ControllerFixture {
        let f = try ControllerFixture()
        for id in ["gw-1", "gw-2", "gw-3"] { try f.add(id) }
        _ = try f.enrolled("gw-4")
        _ = wireCode { _ = try f.approve("nobody") }
        return f
    }

    func verify(_ f: ControllerFixture) throws -> AuditVerification {
        try f.store.withConnection { try AuditChain.verify($0) }
    }

    @Test("an untouched trail verifies, every entry linked to the one before")
    func intact() throws {
        let f = try fixtureWithHistory()
        let v = try verify(f)
        #expect(v.ok, "\(v)")
        #expect(v.entries >= 6)
        let entries = try f.store.withConnection { try AuditChain.entries($0) }
        #expect(entries.first?.prevHash == AuditChain.genesis)
        for (a, b) in zip(entries, entries.dropFirst()) { #expect(b.prevHash == a.hash && b.seq == a.seq + 1) }
    }

    @Test("editing one field of an entry is found at that entry")
    func edited() throws {
        let f = try fixtureWithHistory()
        _ = try f.sqlite("UPDATE audit SET actor = 'uid:0(nobody)' WHERE seq = 3")
        let v = try verify(f)
        #expect(!v.ok)
        #expect(v.firstBadSeq == 3)
        #expect(v.problem?.contains("edited") == true)
    }

    @Test("editing an entry and recomputing its hash breaks the link to the next entry")
    func editedAndRehashed() throws {
        let f = try fixtureWithHistory()
        let e = try #require(try f.store.withConnection { try AuditChain.entries($0) }.first { $0.seq == 2 })
        let forged = AuditChain.hash(seq: 2, time: e.time, actor: "uid:0(mallory)", action: e.action, target: e.target, outcome: e.outcome,
                                     detail: e.detail, prevHash: e.prevHash)
        _ = try f.sqlite("UPDATE audit SET actor = 'uid:0(mallory)', hash = '\(forged)' WHERE seq = 2")
        let v = try verify(f)
        #expect(!v.ok && v.firstBadSeq == 3, "\(v)")
    }

    @Test("deleting an entry in the middle is found where it is missing")
    func deletedMiddle() throws {
        let f = try fixtureWithHistory()
        _ = try f.sqlite("DELETE FROM audit WHERE seq = 4")
        let v = try verify(f)
        #expect(!v.ok && v.firstBadSeq == 4 && v.problem?.contains("deleted") == true, "\(v)")
    }

    @Test("deleting the newest entries is found against the recorded head")
    func deletedTail() throws {
        let f = try fixtureWithHistory()
        let last = try f.store.withConnection { try AuditChain.entries($0) }.last?.seq ?? 0
        _ = try f.sqlite("DELETE FROM audit WHERE seq >= \(last - 1)")
        let v = try verify(f)
        #expect(!v.ok && v.firstBadSeq == last - 1 && v.problem?.contains("deleted") == true, "\(v)")
    }

    @Test("inserting an entry is found: in the middle it breaks the chain, at the end it passes the head")
    func inserted() throws {
        let f = try fixtureWithHistory()
        // Renumber in two steps (a direct seq + 1 collides with the primary key).
        _ = try f.sqlite("UPDATE audit SET seq = -(seq + 1) WHERE seq >= 3; UPDATE audit SET seq = -seq WHERE seq < 0")
        _ = try f.sqlite("INSERT INTO audit(seq, time, actor, action, target, outcome, detail, prev_hash, hash) VALUES (3, 0, 'x', 'device.add', 'gw-9', 'ok', '', '', '')")
        let middle = try verify(f)
        #expect(!middle.ok && middle.firstBadSeq == 3, "\(middle)")

        let g = try fixtureWithHistory()
        let tail = try #require(try g.store.withConnection { try AuditChain.entries($0) }.last)
        let h = AuditChain.hash(seq: tail.seq + 1, time: 0, actor: "x", action: "device.revoke", target: "gw-1", outcome: "ok", detail: "", prevHash: tail.hash)
        _ = try g.sqlite("INSERT INTO audit(seq, time, actor, action, target, outcome, detail, prev_hash, hash) VALUES (\(tail.seq + 1), 0, 'x', 'device.revoke', 'gw-1', 'ok', '', '\(tail.hash)', '\(h)')")
        let appended = try verify(g)
        #expect(!appended.ok && appended.firstBadSeq == tail.seq + 1 && appended.problem?.contains("inserted") == true, "\(appended)")
    }
}
