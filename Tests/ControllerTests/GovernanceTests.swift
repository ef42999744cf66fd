import Foundation
import Testing

@testable import Controller
import Shared

private let ops = AdminActor(name: "ot-ops", roles: [.ops], auditName: "operator:ot-ops")
private let identity = AdminActor(name: "pki-team", roles: [.identity], auditName: "operator:pki-team")
private let owner = AdminActor(name: "plant-manager", roles: [.business], auditName: "operator:plant-manager")
private let otherBusiness = AdminActor(name: "other-manager", roles: [.business], auditName: "operator:other-manager")

@Suite("Governance: ownership before production, versioned policy, exceptions")
struct GovernanceTests {
    @Test("enrollment is refused with owners_missing while a class-required owner is missing, and succeeds once the owner is assigned")
    func enrollmentNeedsOwners() throws {
        let f = try ControllerFixture()
        // Class `lite` requires ops and business: the device is approvable with those two.
        try f.add("gw-1", class: "lite", owners: ["ops": "ot-ops", "business": "plant-manager"])
        let token = try f.approve("gw-1").token
        // Identity tightens the class: security architecture must now own it too (a new, audited version).
        var lite = try unwrapped(f.register.policies.list().first { $0.name == "lite" })
        #expect(lite.version == 1)
        lite.requiredOwners.append("secarch")
        let v2 = try f.call(.classSet, ClassSetParams(policy: lite, reason: "secarch signs off OT devices"), as: ClassPolicyView.self, actor: identity)
        #expect(v2.version == 2)
        let key = try PrivateKey.generateP256()
        let refused = try f.enroll("gw-1", key: key, token: token)
        #expect(refused.errorCode == "owners_missing")
        #expect(try f.register.show("gw-1").state == "approved")
        _ = try f.call(.deviceTransfer, DeviceTransferParams(id: "gw-1", owners: ["secarch": "sec-arch"]), as: DeviceView.self, actor: ops)
        let issued = try f.enroll("gw-1", key: key, token: token)
        #expect(issued.status == "issued")
        // The certificate records the policy version it was issued under.
        #expect(try f.sqlite("SELECT policy_version FROM certificates WHERE device_id = 'gw-1'") == "2\n")
        #expect(try f.sqlite("SELECT count(*) FROM class_policies WHERE name = 'lite'") == "2\n")
        let audit = try f.sqlite("SELECT actor || ' ' || detail FROM audit WHERE action = 'class.set' AND target = 'lite' ORDER BY seq DESC LIMIT 1")
        #expect(audit.hasPrefix("operator:pki-team version=2 reason=secarch signs off OT devices before="))
    }

    @Test("a policy change is versioned: the new TTL applies to the next certificate; an unchanged or invalid policy is refused")
    func policyVersioned() throws {
        let f = try ControllerFixture()
        var sensor = try unwrapped(f.register.policies.list().first { $0.name == "sensor" })
        #expect(wireCode { _ = try f.call(.classSet, ClassSetParams(policy: sensor), as: ClassPolicyView.self, actor: identity) } == "bad_request")
        sensor.ttl = 7200
        _ = try f.call(.classSet, ClassSetParams(policy: sensor), as: ClassPolicyView.self, actor: identity)
        let (_, reply) = try f.enrolled("gw-1")
        #expect(try unwrapped(reply.notAfter) - Int64(f.clock.now.timeIntervalSince1970) == 7200)
        var bad = sensor
        bad.ttl = bad.maxTTL + 1
        #expect(wireCode { _ = try f.call(.classSet, ClassSetParams(policy: bad), as: ClassPolicyView.self, actor: identity) } == "bad_request")
        // Only identity may change policy.
        #expect(wireCode { _ = try f.call(.classSet, ClassSetParams(policy: sensor), as: ClassPolicyView.self, actor: ops) } == "forbidden")
        #expect(try f.sqlite("SELECT outcome FROM audit WHERE action = 'class.set' ORDER BY seq DESC LIMIT 1") == "forbidden\n")
    }

    func request(_ f: ControllerFixture, device: String = "gw-1", days: Int64 = 30, by actor: AdminActor = ops) throws -> ExceptionView {
        try f.call(.exceptionRequest, ExceptionRequestParams(
            device: device, control: "key_reuse", justification: "PLC firmware cannot generate keys", compensatingControls: "OT VLAN, IDS",
            expiresAt: Int64(f.clock.now.timeIntervalSince1970) + days * 86400), as: ExceptionView.self, actor: actor)
    }

    @Test("an exception has no effect while pending, is approved only by the device's business owner who did not request it, and stops at expiry")
    func exceptionLifecycle() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1")  // class sensor rotates keys
        #expect(try f.renew("gw-1", key: key).errorCode == "key_reused")
        let e = try request(f)
        #expect(e.status == "pending")
        // Pending: no effect.
        #expect(try f.renew("gw-1", key: key).errorCode == "key_reused")
        // The requester cannot approve, even holding the business role and being the owner.
        let requesterOwner = AdminActor(name: "plant-manager", roles: [.ops, .business], auditName: "operator:plant-manager")
        let own = try request(f, by: requesterOwner)
        #expect(wireCode { _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: own.id, decision: "approve"), as: ExceptionView.self,
                                          actor: requesterOwner) } == "separation_of_duties")
        // Another business person is not this device's owner; ops has no business role.
        #expect(wireCode { _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "approve"), as: ExceptionView.self,
                                          actor: otherBusiness) } == "forbidden")
        #expect(wireCode { _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "approve"), as: ExceptionView.self,
                                          actor: ops) } == "forbidden")
        let approved = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "approve", reason: "accepted until replacement"),
                                  as: ExceptionView.self, actor: owner)
        #expect(approved.status == "approved")
        #expect(approved.decidedBy == "plant-manager")
        // Approved: the same key renews.
        #expect(try f.renew("gw-1", key: key).status == "issued")
        // A decided exception cannot be decided again.
        #expect(wireCode { _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "reject"), as: ExceptionView.self,
                                          actor: owner) } == "invalid_transition")
        // After expiry it is ignored and listed as expired.
        f.clock.advance(30 * 86400 + 1)
        #expect(try f.renew("gw-1", key: key).errorCode == "key_reused")
        #expect(try f.exceptions.list().first { $0.id == e.id }?.status == "expired")
        // A key shared with another device is never excused.
        try f.add("gw-2")
        let token = try f.approve("gw-2").token
        #expect(try f.enroll("gw-2", key: key, token: token).errorCode == "key_reused")
    }

    @Test("an exception's expiry may not exceed the class maximum; justification and compensating controls are required")
    func exceptionBounds() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        #expect(wireCode { _ = try request(f, days: 91) } == "policy_violation")  // exception_max defaults to 90d
        #expect(wireCode {
            _ = try f.call(.exceptionRequest, ExceptionRequestParams(device: "gw-1", control: "key_reuse", justification: " ", compensatingControls: "x",
                                                                     expiresAt: Int64(f.clock.now.timeIntervalSince1970) + 86400),
                           as: ExceptionView.self, actor: ops)
        } == "bad_request")
        #expect(wireCode {
            _ = try f.call(.exceptionRequest, ExceptionRequestParams(device: "gw-1", control: "no_such_control", justification: "j", compensatingControls: "c",
                                                                     expiresAt: Int64(f.clock.now.timeIntervalSince1970) + 86400),
                           as: ExceptionView.self, actor: ops)
        } == "bad_request")
        // Only ops requests.
        #expect(wireCode { _ = try request(f, by: owner) } == "forbidden")
    }

    @Test("a ttl_above_max exception for a selector gives its TTL to every matching device while approved")
    func selectorTTLException() throws {
        let f = try ControllerFixture()
        _ = try f.register.add(DeviceAddParams(id: "gw-1", deviceClass: "sensor", owners: allOwners, attributes: DeviceAttributes(site: "plant-a")),
                               actor: "test")
        let e = try f.call(.exceptionRequest, ExceptionRequestParams(
            device: nil, selector: "site=plant-a", control: "ttl_above_max", ttl: 60 * 86400, justification: "satellite link weekly",
            compensatingControls: "monitoring", expiresAt: Int64(f.clock.now.timeIntervalSince1970) + 10 * 86400), as: ExceptionView.self, actor: ops)
        _ = try f.call(.exceptionDecide, ExceptionDecideParams(id: e.id, decision: "approve"), as: ExceptionView.self, actor: owner)
        let token = try f.approve("gw-1").token
        let reply = try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token)
        #expect(try unwrapped(reply.notAfter) - Int64(f.clock.now.timeIntervalSince1970) == 60 * 86400)
    }

    @Test("a device registered for idevid bootstrap, or of a class that no longer allows tokens, cannot enroll with a token")
    func bootstrapMethodEnforced() throws {
        let f = try ControllerFixture()
        var sensor = try unwrapped(f.register.policies.list().first { $0.name == "sensor" })
        sensor.bootstrapMethods = ["token", "idevid"]
        _ = try f.call(.classSet, ClassSetParams(policy: sensor), as: ClassPolicyView.self, actor: identity)
        _ = try f.register.add(DeviceAddParams(id: "gw-1", deviceClass: "sensor", owners: allOwners, attributes: DeviceAttributes(bootstrapMethod: "idevid")),
                               actor: "test")
        let token = try f.approve("gw-1").token
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token).errorCode == "policy_violation")
        try f.add("gw-2")
        let token2 = try f.approve("gw-2").token
        sensor.bootstrapMethods = ["idevid"]
        _ = try f.call(.classSet, ClassSetParams(policy: sensor), as: ClassPolicyView.self, actor: identity)
        #expect(try f.enroll("gw-2", key: try PrivateKey.generateP256(), token: token2).errorCode == "policy_violation")
        // A bootstrap method the class does not allow is refused when the device is registered.
        #expect(wireCode { _ = try f.register.add(DeviceAddParams(id: "gw-3", deviceClass: "lite", owners: ["ops": "o", "business": "b"],
                                                                  attributes: DeviceAttributes(bootstrapMethod: "idevid")), actor: "test") } == "policy_violation")
    }

    @Test("vendors: devices must name a known vendor; procurement alone records vendors, with before and after in the audit")
    func vendors() throws {
        let f = try ControllerFixture()
        let procurement = AdminActor(name: "buyers", roles: [.procurement], auditName: "operator:buyers")
        #expect(wireCode { _ = try f.register.add(DeviceAddParams(id: "gw-1", deviceClass: "sensor", owners: allOwners,
                                                                  attributes: DeviceAttributes(vendor: "Acme")), actor: "test") } == "bad_request")
        #expect(wireCode { _ = try f.call(.vendorSet, VendorView(name: "Acme"), as: VendorView.self, actor: ops) } == "forbidden")
        _ = try f.call(.vendorSet, VendorView(name: "Acme", supportEnd: 1_900_000_000, clauseIssuance: true), as: VendorView.self, actor: procurement)
        _ = try f.call(.vendorSet, VendorView(name: "Acme", supportEnd: 1_900_000_000, clauseIssuance: true, clauseRotation: true, clauseRevocation: true),
                       as: VendorView.self, actor: procurement)
        let d = try f.register.add(DeviceAddParams(id: "gw-1", deviceClass: "sensor", owners: allOwners,
                                                   attributes: DeviceAttributes(vendor: "Acme", zone: "ot", tags: ["line-3", "press"])), actor: "test")
        #expect(d.attributes?.vendor == "Acme")
        #expect(d.attributes?.tags == ["line-3", "press"])
        #expect(try f.sqlite("SELECT detail FROM audit WHERE action = 'vendor.set' ORDER BY seq DESC LIMIT 1")
                .contains("before={support_end=1900000000 managed=false issuance=true rotation=false revocation=false} after={"))
        #expect(wireCode { _ = try f.register.add(DeviceAddParams(id: "gw-2", deviceClass: "sensor", owners: allOwners,
                                                                  attributes: DeviceAttributes(zone: "dmz")), actor: "test") } == "bad_request")
    }

    @Test("operators: the token is shown once and stored only as its SHA-256; it authenticates with exactly the roles given")
    func operators() throws {
        let f = try ControllerFixture()
        let created = try f.admin.operators.add(OperatorAddParams(name: "alice", roles: ["ops", "auditor"]), createdBy: "test")
        #expect(created.token.hasPrefix("lyo_"))
        let actor = try unwrapped(try f.admin.operators.authenticate(bearer: created.token))
        #expect(actor.name == "alice")
        #expect(actor.roles == [.ops, .auditor])
        #expect(actor.auditName == "operator:alice(auditor,ops)")
        #expect(try f.admin.operators.authenticate(bearer: created.token + "x") == nil)
        #expect(try f.sqlite("SELECT count(*) FROM operators WHERE token_hash = '\(Digest.hex(Digest.sha256(Array(created.token.utf8))))'") == "1\n")
        for file in [f.databasePath, f.databasePath + "-wal"] where FileManager.default.fileExists(atPath: file) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(bytes.range(of: Data(created.token.utf8)) == nil, "token text found in \(file)")
        }
        #expect(wireCode { _ = try f.admin.operators.add(OperatorAddParams(name: "alice", roles: ["ops"]), createdBy: "test") } == "already_exists")
        #expect(wireCode { _ = try f.admin.operators.add(OperatorAddParams(name: "bob", roles: ["root"]), createdBy: "test") } == "bad_request")
        #expect(wireCode { _ = try f.admin.operators.add(OperatorAddParams(name: "bob smith", roles: ["ops"]), createdBy: "test") } == "bad_request")
    }
}
