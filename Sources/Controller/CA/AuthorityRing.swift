import Foundation
import Shared
import Synchronization

/// The issuing CAs the controller holds: the one that issues now (`active`)
/// and every CA still trusted (`live`: during a rotation, the old one until
/// it retires and the new one from before it issues). Issuance, the CRLs and
/// re-enrollment read it on every request; a CA rotation swaps it while the
/// controller runs.
package final class AuthorityRing: Sendable {
    private struct State: Sendable {
        var active: IssuingAuthority
        var live: [IssuingAuthority]
        var bundlePEM: String
    }
    private let state: Mutex<State>

    /// A ring of one CA (a controller that never rotated, unit tests).
    package init(_ authority: IssuingAuthority) {
        state = Mutex(State(active: authority, live: [authority], bundlePEM: authority.bundlePEM))
    }

    /// The CA that signs new certificates, carrying the current trust bundle.
    package var active: IssuingAuthority {
        state.withLock { s in
            var active = s.active
            active.bundlePEM = s.bundlePEM
            return active
        }
    }

    /// Every CA whose certificates are still trusted, oldest first.
    package var live: [IssuingAuthority] { state.withLock { $0.live } }

    package var bundlePEM: String { state.withLock { $0.bundlePEM } }

    /// The live CA that issued `certificate`, if any.
    package func issuer(of certificate: Certificate) -> IssuingAuthority? {
        live.first { certificate.isIssued(by: $0.certificate) }
    }

    package func replace(active: IssuingAuthority, live: [IssuingAuthority], bundlePEM: String) {
        state.withLock { $0 = State(active: active, live: live.sorted { $0.generation < $1.generation }, bundlePEM: bundlePEM) }
    }

    /// The CAs the register lists as not retired, from their files. A
    /// register that predates CA generations gets generation 1 (the CA
    /// `init` made) recorded as the active one.
    package static func load(layout: PKILayout, store: Store, clock: @Sendable () -> Date = { Date() }) throws -> AuthorityRing {
        let rows = try store.transaction { db -> [[SQLValue]] in
            var rows = try db.query("SELECT generation, state FROM ca_generations ORDER BY generation")
            if rows.isEmpty {
                let first = try IssuingAuthority.load(layout, generation: 1)
                try record(db, first, state: "active", now: clock())
                rows = [[.int(1), .text("active")]]
            }
            return rows
        }
        var live: [IssuingAuthority] = []
        var active: IssuingAuthority?
        for row in rows where row[1].text != "retired" {
            let authority = try IssuingAuthority.load(layout, generation: Int(row[0].int ?? 0))
            live.append(authority)
            if row[1].text == "active" { active = authority }
        }
        guard let active else { throw WireError(.internal, "the register names no active issuing CA (table ca_generations)") }
        let ring = AuthorityRing(active)
        ring.replace(active: active, live: live, bundlePEM: try AtomicFile.readText(layout.bundle))
        return ring
    }

    static func record(_ db: SQLiteConnection, _ authority: IssuingAuthority, state: String, now: Date) throws {
        let t = Int64(now.timeIntervalSince1970)
        try db.query("""
            INSERT INTO ca_generations(generation, common_name, serial, not_after, state, created_at, activated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, [.int(Int64(authority.generation)), .text(authority.certificate.commonName ?? ""), .text(authority.certificate.serialHex),
                  .int(Int64(authority.certificate.notAfter.timeIntervalSince1970)), .text(state), .int(t), state == "active" ? .int(t) : .null])
    }
}
