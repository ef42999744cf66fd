import Foundation
import Shared

/// The audit-ready evidence report: one entry per control with how many
/// devices were checked, the failing ones and the owners to act, built from
/// the same findings `lanyardctl findings` shows plus the access review and
/// the audit chain.
package struct EvidenceReportBuilder: Sendable {
    package let findings: FleetFindings
    package let review: AccessReview
    package let trustDomain: String

    package init(findings: FleetFindings, review: AccessReview, trustDomain: String) {
        self.findings = findings
        self.review = review
        self.trustDomain = trustDomain
    }

    package func build() throws -> EvidenceReport {
        let now = Int64(findings.clock().timeIntervalSince1970)
        // Counts, not the devices themselves: the findings name the failing ones.
        // These first, so what they read is released before the findings are made.
        let (verification, exceptionCounts, timesToRevoke, rotationNote, counts) = try findings.store.withConnection { db in
            (try AuditChain.verify(db),
             try db.query("SELECT status, count(*) FROM exceptions GROUP BY status").map { "\($0[0].text ?? "") \($0[1].int ?? 0)" },
             try db.query("SELECT revocation_published_at - revoked_at FROM devices WHERE revocation_published_at IS NOT NULL").compactMap { $0[0].int },
             try EvidenceReportBuilder.rotationEvidence(db),
             try db.query("""
                SELECT count(*), count(*) FILTER (WHERE state IN ('active', 'suspended')), count(*) FILTER (WHERE state IN ('retired', 'revoked')),
                       count(*) FILTER (WHERE revoked_at IS NOT NULL) FROM devices
                """).first.map { row in (0..<4).map { Int(row[$0].int ?? 0) } } ?? [0, 0, 0, 0])
        }
        let (deviceCount, liveCount, retiredOrRevoked, everRevoked) = (counts[0], counts[1], counts[2], counts[3])
        let all = try findings.findings()
        var controls: [ControlEvidence] = []
        for control in FleetFindings.controls {
            let failing = all.filter { $0.control == control.name }
            var checked = liveCount
            var note = ""
            var status = failing.isEmpty ? "pass" : "fail"
            var failingDevices = Array(Set(failing.compactMap(\.device))).sorted()
            var owners = Array(Set(failing.map(\.owner))).sorted()
            switch control.name {
            case "ownership_before_production", "unique_identity", "inventory": checked = deviceCount
            case "retirement_checks": checked = retiredOrRevoked
            case "revocation_within_sla":
                checked = everRevoked
                if let worst = timesToRevoke.max() { note = "time from revocation to a published CRL: worst \(worst) s over \(timesToRevoke.count) revocation(s)" }
            case "rotation_on_lifecycle_events": note = rotationNote
            case "exceptions_approved_and_expiring":
                checked = exceptionCounts.count
                note = exceptionCounts.isEmpty ? "no exceptions" : "exceptions by status: " + exceptionCounts.joined(separator: ", ")
            case "periodic_review":
                if let r = try? review.show(ReviewRef()) {
                    checked = r.items.count
                    failingDevices = r.unattested
                    owners = Array(Set(r.items.filter { $0.decision == nil }.map { "business:\($0.owner)" })).sorted()
                    let overdue = now > r.dueAt
                    status = r.unattested.isEmpty ? "pass" : (overdue ? "fail" : "in_progress")
                    note = "review \(r.id) started \(r.startedAt) by \(r.startedBy), due \(r.dueAt): \(r.items.count - r.unattested.count) of \(r.items.count) attested"
                        + ", \(r.items.filter { $0.decision == "retire" }.count) marked for retirement"
                } else {
                    checked = 0
                    status = "fail"
                    note = "no access review has been run (lanyardctl review start)"
                }
            default: break
            }
            controls.append(ControlEvidence(control: control.name, title: control.title, references: control.references, status: status,
                                            checked: checked, failing: failingDevices, owners: owners, note: note))
        }
        return EvidenceReport(generatedAt: now, trustDomain: trustDomain, devices: deviceCount, auditEntries: verification.entries,
                              auditChainIntact: verification.ok, controls: controls)
    }

    /// The issuing CA in use, the last CA rotation and the campaigns by outcome: what an auditor asks about rotation.
    static func rotationEvidence(_ db: SQLiteConnection) throws -> String {
        var parts: [String] = []
        if let active = try db.query("SELECT generation, common_name, activated_at FROM ca_generations WHERE state = 'active'").first {
            parts.append("issuing CA \(active[0].int ?? 0) (\(active[1].text ?? "")) active since \(active[2].int ?? 0)")
        }
        if let rotation = try db.query("SELECT id, from_generation, to_generation, phase, created_at, ended_at FROM ca_rotations ORDER BY created_at DESC, rowid DESC LIMIT 1").first {
            parts.append("last CA rotation \(rotation[0].text ?? "") (CA \(rotation[1].int ?? 0) → CA \(rotation[2].int ?? 0)) \(rotation[3].text ?? "")"
                         + " started \(rotation[4].int ?? 0)\(rotation[5].int.map { ", ended \($0)" } ?? "")")
        }
        let campaigns = try db.query("SELECT state, count(*) FROM campaigns GROUP BY state ORDER BY state").map { "\($0[0].text ?? "") \($0[1].int ?? 0)" }
        if !campaigns.isEmpty { parts.append("rotation campaigns: " + campaigns.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }
}
