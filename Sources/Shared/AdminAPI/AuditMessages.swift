#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One entry of the controller's hash-chained audit trail.
package struct AuditEntry: Codable, Sendable, Equatable {
    package var seq: Int64
    /// Unix seconds.
    package var time: Int64
    /// `uid:1000(alice)` for an operator, `device:gw-17` for a device.
    package var actor: String
    package var action: String
    package var target: String
    /// `ok` or the coded error of a refusal.
    package var outcome: String
    package var detail: String
    /// Hash of the previous entry (64 zeros for the first).
    package var prevHash: String
    /// SHA-256 over this entry's fields and `prevHash`, lowercase hex.
    package var hash: String

    package init(seq: Int64, time: Int64, actor: String, action: String, target: String, outcome: String, detail: String, prevHash: String, hash: String) {
        self.seq = seq
        self.time = time
        self.actor = actor
        self.action = action
        self.target = target
        self.outcome = outcome
        self.detail = detail
        self.prevHash = prevHash
        self.hash = hash
    }
}

package struct AuditExport: Codable, Sendable {
    package var entries: [AuditEntry]
    package init(entries: [AuditEntry]) { self.entries = entries }
}

extension AuditExport: LargeWireAnswer {
    /// `{"entries":[...]}`, a slice of entries at a time (a 100,000-device register has more audit entries than devices).
    package func wireEncoded() -> Data {
        var out = Data(#"{"entries":"#.utf8)
        WireCodec.appendArray(entries, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// The result of recomputing the chain.
package struct AuditVerification: Codable, Sendable, Equatable {
    package var ok: Bool
    package var entries: Int
    /// The first entry found edited, inserted or deleted (its seq, or the seq where one is missing).
    package var firstBadSeq: Int64?
    package var problem: String?

    package init(ok: Bool, entries: Int, firstBadSeq: Int64? = nil, problem: String? = nil) {
        self.ok = ok
        self.entries = entries
        self.firstBadSeq = firstBadSeq
        self.problem = problem
    }
}
