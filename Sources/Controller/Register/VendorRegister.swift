import Foundation
import Shared

/// Vendors, kept by procurement: support end, whether the vendor manages the
/// fleet, and which identity clauses (issuance, rotation, revocation channel)
/// the contract carries. Devices name their vendor; an unknown vendor is refused.
package struct VendorRegister: Sendable {
    package let store: Store
    package let clock: @Sendable () -> Date

    package init(store: Store, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.clock = clock
    }

    /// Creates or replaces a vendor record; the audit entry carries before and after.
    package func set(_ v: VendorView, actor: String) throws -> VendorView {
        guard (1...128).contains(v.name.count), !v.name.contains(where: { $0.isNewline || $0 == "," || $0 == "\"" }) else {
            throw WireError(.badRequest, "vendor name must be 1 to 128 characters on one line, without commas or quotes")
        }
        if let end = v.supportEnd, end < 0 { throw WireError(.badRequest, "supportEnd must be a Unix time") }
        let now = clock()
        try store.transaction { db in
            let before = try VendorRegister.find(db, v.name)
            try db.query("""
                INSERT INTO vendors(name, support_end, vendor_managed, clause_issuance, clause_rotation, clause_revocation, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET support_end = excluded.support_end, vendor_managed = excluded.vendor_managed,
                    clause_issuance = excluded.clause_issuance, clause_rotation = excluded.clause_rotation,
                    clause_revocation = excluded.clause_revocation, updated_at = excluded.updated_at
                """, [.text(v.name), v.supportEnd.map { .int($0) } ?? .null, .int(v.vendorManaged ? 1 : 0), .int(v.clauseIssuance ? 1 : 0),
                      .int(v.clauseRotation ? 1 : 0), .int(v.clauseRevocation ? 1 : 0), .int(Int64(now.timeIntervalSince1970))])
            try db.audit(time: now, actor: actor, action: "vendor.set", target: v.name, outcome: "ok",
                         detail: "before={\(before.map(VendorRegister.describe) ?? "-")} after={\(VendorRegister.describe(v))}")
        }
        return v
    }

    package func list() throws -> [VendorView] {
        try store.withConnection { db in
            try db.query("SELECT name FROM vendors ORDER BY name").compactMap { $0[0].text }.compactMap { try VendorRegister.find(db, $0) }
        }
    }

    static func find(_ db: SQLiteConnection, _ name: String) throws -> VendorView? {
        guard let r = try db.query("""
            SELECT name, support_end, vendor_managed, clause_issuance, clause_rotation, clause_revocation FROM vendors WHERE name = ?
            """, [.text(name)]).first else { return nil }
        return VendorView(name: r[0].text ?? "", supportEnd: r[1].int, vendorManaged: r[2].int == 1, clauseIssuance: r[3].int == 1,
                          clauseRotation: r[4].int == 1, clauseRevocation: r[5].int == 1)
    }

    static func describe(_ v: VendorView) -> String {
        "support_end=\(v.supportEnd.map(String.init) ?? "-") managed=\(v.vendorManaged) issuance=\(v.clauseIssuance) rotation=\(v.clauseRotation) revocation=\(v.clauseRevocation)"
    }
}
