import Foundation
import Testing

@testable import Controller
import Shared

private let ops = AdminActor(name: "ot-ops", roles: [.ops], auditName: "operator:ot-ops")
private let identity = AdminActor(name: "pki-team", roles: [.identity], auditName: "operator:pki-team")
private let owner = AdminActor(name: "plant-manager", roles: [.business], auditName: "operator:plant-manager")
private let procurement = AdminActor(name: "buyers", roles: [.procurement], auditName: "operator:buyers")
private let auditor = AdminActor(name: "auditor-1", roles: [.auditor], auditName: "operator:auditor-1")

@Suite("Findings, access review and the evidence report on a register seeded with each problem")
struct EvidenceTests {
    @Test("a clean register has no findings")
    func clean() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        try f.register.recordState(try #require(DeviceID("gw-1")), reported: "active")
        try f.crl.publish()  // as the controller does before anything else
        #expect(try f.call(.findings, Empty(), as: FindingsResult.self, actor: auditor).findings.isEmpty)
    }

    @Test("the CRLs the broker reads: missing is critical, past half the refresh margin is high (the refresh is failing), expired is critical")
    func crlFreshness() throws {
        let f = try ControllerFixture()
        func crlFindings() throws -> [String: String] {
            let all = try f.call(.findings, Empty(), as: FindingsResult.self, actor: auditor).findings.filter { $0.kind.hasPrefix("crl_") }
            #expect(all.allSatisfy { $0.control == "revocation_within_sla" && $0.owner.hasPrefix("secarch:") && $0.device == nil }, "\(all)")
            return Dictionary(all.map { ($0.kind, $0.severity) }, uniquingKeysWith: { a, _ in a })
        }
        #expect(try crlFindings() == ["crl_missing": "critical"])
        try f.crl.publish()
        #expect(try crlFindings().isEmpty)
        let validity = f.configuration.crlValidity.timeInterval, margin = f.configuration.crlRefreshBefore.timeInterval
        f.clock.advance(validity - margin / 2 + 60)
        #expect(try crlFindings() == ["crl_stale": "high"])
        f.clock.advance(margin)
        #expect(try crlFindings() == ["crl_expired": "critical"])
        try f.crl.refreshIfDue()
        #expect(try crlFindings().isEmpty)
    }

    @Test("each seeded problem is found with its severity, owner to act and control, and the report fails exactly those controls")
    func seeded() throws {
        let f = try ControllerFixture()
        // A class whose renewal SLA covers the whole lifetime and that tolerates one minute offline.
        var tight = try unwrapped(f.register.policies.list().first { $0.name == "sensor" })
        tight.name = "tight"
        tight.version = nil
        tight.renewalSLA = 86400
        tight.offlineTolerance = 60
        _ = try f.call(.classSet, ClassSetParams(policy: tight), as: ClassPolicyView.self, actor: identity)
        _ = try f.call(.vendorSet, VendorView(name: "Cheap"), as: VendorView.self, actor: procurement)

        _ = try f.enrolled("gw-expired", class: "lite", owners: ["ops": "ot-ops", "business": "plant-manager"])  // 1 h TTL
        _ = try f.enrolled("gw-soon", class: "tight")
        let (keyA, _) = try f.enrolled("gw-shared-a")
        _ = try f.enrolled("gw-shared-b")
        let (rotKey, _) = try f.enrolled("gw-reuse")
        let e = try f.call(.exceptionRequest, ExceptionRequestParams(device: "gw-reuse", control: "key_reuse", justification: "legacy",
                                                                     compensatingControls: "VLAN", expiresAt: Int64(f.clock.now.timeIntervalSince1970) + 3600),
                           as: ExceptionView.self, actor: ops)
        _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "approve"), as: ExceptionView.self, actor: owner)
        #expect(try f.renew("gw-reuse", key: rotKey).status == "issued")
        var noBusiness = allOwners
        noBusiness["business"] = nil
        try f.add("gw-unowned", owners: noBusiness)
        _ = try f.enrolled("gw-retired")
        _ = try f.enrolled("gw-old-ca")
        _ = try f.register.add(DeviceAddParams(id: "gw-cheap", deviceClass: "sensor", owners: allOwners, attributes: DeviceAttributes(vendor: "Cheap")),
                               actor: "test")
        let cheapToken = try f.approve("gw-cheap").token
        #expect(try f.enroll("gw-cheap", key: try PrivateKey.generateP256(), token: cheapToken).status == "issued")
        _ = try f.enrolled("gw-slow-revoke")
        _ = try f.revocation.revoke(RevokeParams(id: "gw-slow-revoke", reason: "keyCompromise"), actor: "test")
        _ = try f.enrolled("gw-moved")
        _ = try f.register.transfer(DeviceTransferParams(id: "gw-moved", owners: ["ops": "new-ops"]), actor: "test")

        // Problems the controller itself never lets happen, written into the file as a broken or migrated register might hold them.
        let fpA = try f.sqlite("SELECT key_fingerprint FROM certificates WHERE device_id = 'gw-shared-a'").trimmed()
        _ = try f.sqlite("UPDATE certificates SET key_fingerprint = '\(fpA)' WHERE device_id = 'gw-shared-b'")
        _ = try f.sqlite("UPDATE devices SET state = 'retired', retired_at = 1 WHERE id = 'gw-retired'")
        _ = try f.sqlite("UPDATE certificates SET issuer = 'Lanyard Issuing CA 0 (retired)' WHERE device_id = 'gw-old-ca'")
        _ = try f.sqlite("UPDATE devices SET revoked_at = revoked_at - 3600, revocation_published_at = NULL WHERE id = 'gw-slow-revoke'")
        _ = keyA

        f.clock.advance(2 * 3600)
        // Everyone but gw-soon reports in, so only its class's one-minute tolerance makes an `unseen` finding.
        for id in try f.register.list().map(\.id) where id != "gw-soon" { try f.register.recordState(try #require(DeviceID(id)), reported: "active") }

        let findings = try f.call(.findings, Empty(), as: FindingsResult.self, actor: auditor).findings
        func has(_ kind: String, _ device: String, severity: String, role: String, control: String) {
            #expect(findings.contains { $0.kind == kind && $0.device == device && $0.severity == severity && $0.owner.hasPrefix(role + ":")
                                          && $0.control == control && !$0.references.isEmpty },
                    "missing \(kind) for \(device): \(findings.filter { $0.device == device })")
        }
        has("expired", "gw-expired", severity: "critical", role: "ops", control: "ttl_enforced")
        has("expiring_without_renewal", "gw-soon", severity: "high", role: "ops", control: "ttl_enforced")
        has("unseen", "gw-soon", severity: "medium", role: "ops", control: "inventory")
        has("shared_key", "gw-shared-a", severity: "critical", role: "secarch", control: "unique_identity")
        has("shared_key", "gw-shared-b", severity: "critical", role: "secarch", control: "unique_identity")
        has("key_reused_across_rotations", "gw-reuse", severity: "high", role: "ops", control: "no_shared_credentials")
        has("exception_expired", "gw-reuse", severity: "medium", role: "business", control: "exceptions_approved_and_expiring")
        has("owner_missing", "gw-unowned", severity: "medium", role: "ops", control: "ownership_before_production")
        has("retired_with_valid_cert", "gw-retired", severity: "critical", role: "secarch", control: "retirement_checks")
        has("issuer_ca_retired", "gw-old-ca", severity: "high", role: "identity", control: "rotation_on_lifecycle_events")
        has("vendor_without_clauses", "gw-cheap", severity: "medium", role: "procurement", control: "supplier_clauses")
        has("revocation_sla_missed", "gw-slow-revoke", severity: "high", role: "secarch", control: "revocation_within_sla")
        has("rotation_pending", "gw-moved", severity: "medium", role: "ops", control: "rotation_on_lifecycle_events")
        // The business owner to act is named, not just the role.
        #expect(findings.first { $0.kind == "exception_expired" }?.owner == "business:plant-manager")
        // Nothing about the devices that are fine.
        #expect(!findings.contains { $0.device == "gw-shared-a" && $0.kind != "shared_key" })

        // The report: every control failing here names its devices and owners; the review has not run.
        var report = try f.call(.report, Empty(), as: EvidenceReport.self, actor: auditor)
        let failing = Set(report.controls.filter { $0.status == "fail" }.map(\.control))
        #expect(failing == Set(FleetFindings.controls.map(\.name)), "\(failing)")
        #expect(report.controls.first { $0.control == "retirement_checks" }?.failing == ["gw-retired"])
        #expect(report.controls.first { $0.control == "unique_identity" }?.owners == ["secarch:sec-arch"])
        #expect(report.auditChainIntact)
        let md = report.markdown(time: { String($0) })
        for id in ["OWASP NHI1:2025 Improper Offboarding", "OWASP NHI9:2025 NHI Reuse", "NIST CSF 2.0 PR.AA-05", "NIST CSF 2.0 GV.SC-05", "ID.AM-01"] {
            #expect(md.contains(id), "the Markdown report lacks \(id)")
        }
        let csv = report.csv().split(separator: "\r\n")
        #expect(csv.count == 1 + FleetFindings.controls.count)
        #expect(csv.contains { $0.hasPrefix("retirement_checks,fail,") && $0.contains("gw-retired") && $0.contains("NHI1;ID.AM-08") })

        // Access review: identity starts it, the business owner attests, the rest are listed as unattested.
        #expect(wireCode { _ = try f.call(.reviewStart, ReviewStartParams(dueIn: 86400), as: ReviewView.self, actor: ops) } == "forbidden")
        let review = try f.call(.reviewStart, ReviewStartParams(dueIn: 86400), as: ReviewView.self, actor: identity)
        #expect(review.items.contains { $0.device == "gw-soon" && $0.owner == "plant-manager" })
        #expect(!review.items.contains { $0.device == "gw-unowned" || $0.device == "gw-retired" })  // not active
        #expect(wireCode { _ = try f.call(.reviewAttest, ReviewAttestParams(review: review.id, device: "gw-soon", decision: "keep"), as: ReviewView.self,
                                          actor: AdminActor(name: "someone-else", roles: [.business], auditName: "operator:someone-else")) } == "forbidden")
        let attested = try f.call(.reviewAttest, ReviewAttestParams(review: review.id, device: "gw-soon", decision: "retire", note: "line closed"),
                                  as: ReviewView.self, actor: owner)
        #expect(!attested.unattested.contains("gw-soon"))
        #expect(attested.unattested.contains("gw-cheap"))
        report = try f.call(.report, Empty(), as: EvidenceReport.self, actor: auditor)
        let periodic = try unwrapped(report.controls.first { $0.control == "periodic_review" })
        #expect(periodic.status == "in_progress")
        #expect(periodic.failing == attested.unattested)
        f.clock.advance(86400 + 1)
        #expect(try f.call(.report, Empty(), as: EvidenceReport.self, actor: auditor).controls.first { $0.control == "periodic_review" }?.status == "fail")
        #expect(try f.sqlite("SELECT count(*) FROM audit WHERE action IN ('review.start', 'review.attest', 'report.evidence') AND outcome = 'ok'") == "5\n")
    }
}
