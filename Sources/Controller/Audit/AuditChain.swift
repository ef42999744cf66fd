import Foundation
import Shared

/// The audit trail as a hash chain: each entry's hash covers its fields and
/// the previous entry's hash, and the head (last seq and hash) is kept in
/// `meta`. Editing, inserting or deleting a row in the SQLite file breaks the
/// chain at that entry; `verify` names the first one. Someone who can rewrite
/// the whole file can rebuild the chain: export it regularly (`lanyardctl
/// audit export`) to a place they cannot reach to anchor it.
package enum AuditChain {
    package static let genesis = String(repeating: "0", count: 64)
    static let format = "lanyard-audit-v1"

    package static func hash(seq: Int64, time: Int64, actor: String, action: String, target: String, outcome: String, detail: String,
                             prevHash: String) -> String {
        // A JSON array of strings: unambiguous field boundaries, stable bytes.
        let fields = [format, String(seq), String(time), actor, action, target, outcome, detail, prevHash]
        // WireCodec.encodeStrings: the bytes JSONEncoder gives for the array (IssuanceFastPathTests), without it.
        return Digest.hex(Digest.sha256(WireCodec.encodeStrings(fields)))
    }

    /// Appends one entry. The caller holds the store's lock (every
    /// `SQLiteConnection` use does), so the head cannot move underneath.
    static func append(_ db: SQLiteConnection, time: Date, actor: String, action: String, target: String, outcome: String, detail: String) throws {
        let head = try db.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").first
        let seq = (head?[0].int ?? 0) + 1
        let prev = head?[1].text ?? genesis
        let t = Int64(time.timeIntervalSince1970)
        let h = hash(seq: seq, time: t, actor: actor, action: action, target: target, outcome: outcome, detail: detail, prevHash: prev)
        try db.query("INSERT INTO audit(seq, time, actor, action, target, outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [.int(seq), .int(t), .text(actor), .text(action), .text(target), .text(outcome), .text(detail), .text(prev), .text(h)])
        try db.setMeta("audit_head", "\(seq):\(h)")
    }

    package static func entries(_ db: SQLiteConnection) throws -> [AuditEntry] {
        try db.query("SELECT seq, time, actor, action, target, outcome, detail, prev_hash, hash FROM audit ORDER BY seq").map {
            AuditEntry(seq: $0[0].int ?? 0, time: $0[1].int ?? 0, actor: $0[2].text ?? "", action: $0[3].text ?? "", target: $0[4].text ?? "",
                       outcome: $0[5].text ?? "", detail: $0[6].text ?? "", prevHash: $0[7].text ?? "", hash: $0[8].text ?? "")
        }
    }

    /// Recomputes every hash and link; reports the first entry that does not fit.
    /// Reads the trail a row at a time (a 100,000-device register has more
    /// entries than devices), keeping only the previous hash.
    package static func verify(_ db: SQLiteConnection) throws -> AuditVerification {
        var count = 0
        var expectedSeq: Int64 = 1
        var prev = genesis
        var first: (seq: Int64, problem: String)?
        var last: (seq: Int64, hash: String)?
        try db.forEachRow("SELECT seq, time, actor, action, target, outcome, detail, prev_hash, hash FROM audit ORDER BY seq") { row in
            count += 1
            let e = AuditEntry(seq: row[0].int ?? 0, time: row[1].int ?? 0, actor: row[2].text ?? "", action: row[3].text ?? "", target: row[4].text ?? "",
                               outcome: row[5].text ?? "", detail: row[6].text ?? "", prevHash: row[7].text ?? "", hash: row[8].text ?? "")
            last = (e.seq, e.hash)
            guard first == nil else { return }  // the rest is only counted
            if e.seq != expectedSeq {
                first = (min(e.seq, expectedSeq), e.seq > expectedSeq ? "entry \(expectedSeq) is missing (deleted)" : "entry \(e.seq) is out of sequence (inserted)")
            } else if e.prevHash != prev {
                first = (e.seq, "entry \(e.seq) does not follow entry \(e.seq - 1) (an entry was inserted, deleted or edited)")
            } else if hash(seq: e.seq, time: e.time, actor: e.actor, action: e.action, target: e.target, outcome: e.outcome,
                            detail: e.detail, prevHash: e.prevHash) != e.hash {
                first = (e.seq, "entry \(e.seq) was edited (its hash does not match)")
            }
            prev = e.hash
            expectedSeq += 1
        }
        if let first { return AuditVerification(ok: false, entries: count, firstBadSeq: first.seq, problem: first.problem) }
        let head = try db.meta("audit_head")
        let tail = last.map { "\($0.seq):\($0.hash)" }
        if head != tail {
            let headSeq = head.flatMap { Int64($0.split(separator: ":").first ?? "") } ?? 0
            let lastSeq = last?.seq ?? 0
            if headSeq > lastSeq {
                return AuditVerification(ok: false, entries: count, firstBadSeq: lastSeq + 1,
                                         problem: "entries \(lastSeq + 1) to \(headSeq) were deleted")
            }
            if headSeq < lastSeq {
                return AuditVerification(ok: false, entries: count, firstBadSeq: headSeq + 1,
                                         problem: "entries after \(headSeq) were appended outside the controller (inserted)")
            }
            return AuditVerification(ok: false, entries: count, firstBadSeq: lastSeq, problem: "entry \(lastSeq) does not match the recorded head (edited)")
        }
        return AuditVerification(ok: true, entries: count)
    }

    /// Schema v2: adds the chain to a v1 audit table and hashes what is there.
    static func migrate(_ db: SQLiteConnection) throws {
        try db.execute("ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''; ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
        var prev = genesis
        var seq: Int64 = 0
        for row in try db.query("SELECT seq, time, actor, action, target, outcome, detail FROM audit ORDER BY seq") {
            seq += 1
            let old = row[0].int ?? 0
            let h = hash(seq: seq, time: row[1].int ?? 0, actor: row[2].text ?? "", action: row[3].text ?? "", target: row[4].text ?? "",
                         outcome: row[5].text ?? "", detail: row[6].text ?? "", prevHash: prev)
            try db.query("UPDATE audit SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?", [.int(seq), .text(prev), .text(h), .int(old)])
            prev = h
        }
        if seq > 0 { try db.setMeta("audit_head", "\(seq):\(prev)") }
    }
}
