import Foundation
import Shared

/// What is wrong in the fleet now, like AWS IoT Device Defender's audit:
/// each finding has a severity, the device, the owner who must act and the
/// control it violates (the same control names as the evidence report).
package struct FleetFindings: Sendable {
    package let store: Store
    package let register: DeviceRegister
    /// The issuing CA's common name: certificates from any other issuer come from a retired CA.
    /// (A CA rotation changes it while the controller runs.)
    package let currentIssuerName: @Sendable () -> String
    package let clock: @Sendable () -> Date
    /// The CRLs the broker reads and how long before nextUpdate they are
    /// refreshed; nil where no CRL is published (unit tests of the register).
    package var crl: CRLPublisher?

    package init(store: Store, register: DeviceRegister, currentIssuer: String, clock: @escaping @Sendable () -> Date) {
        self.init(store: store, register: register, currentIssuerName: { currentIssuer }, clock: clock)
    }

    package init(store: Store, register: DeviceRegister, currentIssuerName: @escaping @Sendable () -> String, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.register = register
        self.currentIssuerName = currentIssuerName
        self.clock = clock
    }

    /// Control names shared with the report, with their framework identifiers.
    package static let controls: [(name: String, title: String, references: [String])] = [
        ("unique_identity", "Unique device identity", ["NHI9", "PR.AA-01", "PR.AA-03"]),
        ("no_shared_credentials", "No shared or reused credentials", ["NHI9", "NHI2"]),
        ("ttl_enforced", "Short-lived certificates, TTL enforced", ["NHI7", "PR.AA-01"]),
        ("rotation_on_lifecycle_events", "Rotation on lifecycle events", ["NHI7", "ID.AM-08"]),
        ("revocation_within_sla", "Revocation within SLA", ["NHI1", "PR.AA-01"]),
        ("ownership_before_production", "Ownership explicit before production", ["GV.RR-02", "NHI5"]),
        ("exceptions_approved_and_expiring", "Exceptions approved and expiring", ["PR.AA-05"]),
        ("retirement_checks", "Retirement: no valid credential left", ["NHI1", "ID.AM-08"]),
        ("periodic_review", "Periodic access review", ["GV.RR-02", "PR.AA-05"]),
        ("supplier_clauses", "Vendor contracts carry identity clauses", ["GV.SC-05"]),
        ("inventory", "Hardware inventory current (devices seen)", ["ID.AM-01"]),
    ]

    static func references(_ control: String) -> [String] { controls.first { $0.name == control }?.references ?? [] }

    package func findings() throws -> [FindingView] {
        let now = Int64(clock().timeIntervalSince1970)
        // The register is walked a page at a time (docs/benchmarks.md §10.6): only
        // what the certificate checks below need is kept per device, and the
        // owners of a device those checks flag are read when it is flagged
        // (at 100,000 devices, every one of them may be).
        struct Kept { var state: String, deviceClass: String, serial: String? }
        var kept: [String: Kept] = [:]
        var out: [FindingView] = []
        func add(_ kind: String, _ severity: String, _ device: FlaggedDevice?, role: String, _ control: String, _ detail: String) {
            let name = device?.owners[role]
            out.append(FindingView(kind: kind, severity: severity, device: device?.id, owner: "\(role):\(name ?? "(unassigned)")", control: control,
                                   references: FleetFindings.references(control), detail: detail))
        }
        let vendors = Dictionary(uniqueKeysWithValues: try VendorRegister(store: store, clock: clock).list().map { ($0.name, $0) })
        try register.forEachPage { page in for d in page {
            kept[d.id] = Kept(state: d.state, deviceClass: d.deviceClass, serial: d.serial)
            guard let state = DeviceState(rawValue: d.state) else { continue }
            let policy = register.policies.current(d.deviceClass)?.policy
            let live = state == .active || state == .suspended
            if live, let notAfter = d.notAfter {
                if notAfter <= now {
                    add("expired", "critical", FlaggedDevice(d), role: "ops", "ttl_enforced", "certificate \(d.serial ?? "") expired at \(notAfter)")
                } else if let sla = policy?.renewalSLA.seconds, notAfter - now < sla {
                    add("expiring_without_renewal", "high", FlaggedDevice(d), role: "ops", "ttl_enforced",
                        "certificate \(d.serial ?? "") expires in \(notAfter - now) s, inside the renewal SLA of \(sla) s, and was not renewed")
                }
            }
            if live, let tolerance = policy?.offlineTolerance.seconds {
                let seen = d.lastSeen ?? d.createdAt
                if now - seen > tolerance { add("unseen", "medium", FlaggedDevice(d), role: "ops", "inventory", "not seen for \(now - seen) s (tolerance \(tolerance) s)") }
            }
            if state != .revoked && state != .retired && !d.missingOwners.isEmpty {
                add("owner_missing", state == .registered ? "medium" : "high", FlaggedDevice(d), role: "ops", "ownership_before_production",
                    "no owner for: \(d.missingOwners.joined(separator: ", "))")
            }
            if live, let why = d.rotationRequired {
                add("rotation_pending", "medium", FlaggedDevice(d), role: "ops", "rotation_on_lifecycle_events", "a new key is required after \(why)")
            }
            if live, let vendor = d.attributes?.vendor, let v = vendors[vendor], !v.hasIdentityClauses {
                add("vendor_without_clauses", "medium", FlaggedDevice(d), role: "procurement", "supplier_clauses",
                    "vendor \(vendor) lacks identity clauses (issuance \(v.clauseIssuance), rotation \(v.clauseRotation), revocation \(v.clauseRevocation))")
            }
        } }
        try store.withConnection { db in
            /// A device a check flags, with its owners (nil if it is not in the register).
            func device(_ id: String?) throws -> FlaggedDevice? {
                guard let id, kept[id] != nil else { return nil }
                var owners: [String: String] = [:]
                for o in try db.query("SELECT role, owner FROM owners WHERE device_id = ?", [.text(id)]) { owners[o[0].text ?? ""] = o[1].text ?? "" }
                return FlaggedDevice(id: id, owners: owners)
            }
            for row in try db.query("""
                SELECT key_fingerprint, group_concat(DISTINCT device_id) FROM certificates GROUP BY key_fingerprint HAVING count(DISTINCT device_id) > 1
                """) {
                let ids = (row[1].text ?? "").split(separator: ",").map(String.init).sorted()
                for id in ids { add("shared_key", "critical", try device(id), role: "secarch", "unique_identity", "the same public key is bound to \(ids.joined(separator: ", "))") }
            }
            for row in try db.query("""
                SELECT device_id, count(*) FROM certificates GROUP BY device_id, key_fingerprint HAVING count(*) > 1
                """) {
                guard let id = row[0].text, let k = kept[id], register.policies.current(k.deviceClass)?.policy.rotateKeys == true else { continue }
                add("key_reused_across_rotations", "high", try device(id), role: "ops", "no_shared_credentials",
                    "\(row[1].int ?? 0) certificates for one key although class \(k.deviceClass) rotates keys")
            }
            let currentIssuer = currentIssuerName()
            try db.forEachRow("""
                SELECT device_id, serial, issuer, not_after - issued_at FROM certificates WHERE revoked_at IS NULL AND not_after > ?
                """, [.int(now)]) { row in
                guard let id = row[0].text, let d = kept[id] else { return }
                // The device's current certificate only: an older one it no longer uses is superseded, not in service.
                if let issuer = row[2].text, !issuer.isEmpty, issuer != currentIssuer, row[1].text == d.serial {
                    add("issuer_ca_retired", "high", try device(id), role: "identity", "rotation_on_lifecycle_events",
                        "certificate \(row[1].text ?? "") was issued by \(issuer), not the current issuing CA")
                }
                if d.state == DeviceState.retired.rawValue || d.state == DeviceState.revoked.rawValue {
                    add("retired_with_valid_cert", "critical", try device(id), role: "secarch", "retirement_checks",
                        "\(d.state) device still holds valid certificate \(row[1].text ?? "")")
                }
                if let max = register.policies.current(d.deviceClass)?.policy.maxTTL.seconds, (row[3].int ?? 0) > max {
                    add("ttl_above_max", "medium", try device(id), role: "identity", "ttl_enforced",
                        "certificate \(row[1].text ?? "") lives \(row[3].int ?? 0) s, above the class maximum of \(max) s (under an exception)")
                }
            }
            for row in try db.query("""
                SELECT id, revoked_at, revocation_published_at, class FROM devices WHERE revoked_at IS NOT NULL
                """) {
                guard let id = row[0].text, kept[id] != nil, let revokedAt = row[1].int,
                      let sla = register.policies.current(row[3].text ?? "")?.policy.revocationSLA.seconds else { continue }
                let published = row[2].int
                let elapsed = (published ?? now) - revokedAt
                if elapsed > sla {
                    add("revocation_sla_missed", "high", try device(id), role: "secarch", "revocation_within_sla",
                        published == nil ? "revoked \(elapsed) s ago and still in no published CRL (SLA \(sla) s)"
                                         : "took \(elapsed) s to reach the CRL (SLA \(sla) s)")
                }
            }
            for row in try db.query("SELECT id, device_id, selector, expires_at FROM exceptions WHERE status = 'approved' AND expires_at <= ?", [.int(now)]) {
                add("exception_expired", "medium", try device(row[1].text), role: "business", "exceptions_approved_and_expiring",
                    "exception \(row[0].int ?? 0) (\(row[1].text ?? row[2].text ?? "")) expired at \(row[3].int ?? 0); the control applies again")
            }
        }
        if let crl { crlFreshness(crl, now: now, add) }
        let order = ["critical": 0, "high": 1, "medium": 2, "low": 3]
        out.sort { (order[$0.severity] ?? 9, $0.device ?? "", $0.kind) < (order[$1.severity] ?? 9, $1.device ?? "", $1.kind) }
        return out
    }

    /// An expired CRL makes the broker refuse every device of that CA; one
    /// past half of its refresh margin means the automatic refresh is failing.
    private func crlFreshness(_ crl: CRLPublisher, now: Int64,
                              _ add: (String, String, FlaggedDevice?, String, String, String) -> Void) {
        let margin = Int64(crl.refreshBefore.timeInterval)
        for file in crl.files() {
            guard let next = file.nextUpdate.map({ Int64($0.timeIntervalSince1970) }) else {
                add("crl_missing", "critical", nil, "secarch", "revocation_within_sla", "\(file.path) is missing or unreadable: the broker refuses every device of that CA")
                continue
            }
            if next <= now {
                add("crl_expired", "critical", nil, "secarch", "revocation_within_sla",
                    "\(file.path) passed its nextUpdate \(now - next) s ago: the broker refuses every device of that CA")
            } else if next - now < margin / 2 {
                add("crl_stale", "high", nil, "secarch", "revocation_within_sla",
                    "\(file.path) expires in \(next - now) s; it is refreshed \(margin) s before nextUpdate, so the refresh is failing")
            }
        }
    }
}

/// What a finding names of its device: the id, and the owners (the one to act is looked up by role).
struct FlaggedDevice {
    var id: String
    var owners: [String: String]
    init(id: String, owners: [String: String]) {
        self.id = id
        self.owners = owners
    }
    init(_ view: DeviceView) { self.init(id: view.id, owners: view.owners) }
}
