import Foundation
import Testing

@testable import Controller
import Shared

/// The allowed transitions, written out here independently of `Lifecycle.table`.
private let allowed: [String: String] = [
    "registered/approve": "approved",
    "approved/approve": "approved",  // a second approval only replaces the unused token
    "approved/enroll": "active",
    "active/suspend": "suspended",
    "suspended/resume": "active",
    "approved/revoke": "revoked",
    "active/revoke": "revoked",
    "suspended/revoke": "revoked",
    "revoked/retire": "retired",
    "active/replace": "retired",
    "suspended/replace": "retired",
    "revoked/replace": "retired",
]

private let ops = AdminActor(name: "ot-ops", roles: [.ops], auditName: "operator:ot-ops")

@Suite("Lifecycle: every transition, allowed and refused, through the real register")
struct LifecycleTests {
    /// Brings a new device to `state` with the product's own calls.
    func device(_ f: ControllerFixture, _ id: String, in state: DeviceState) throws -> (token: String?, key: PrivateKey?) {
        try f.add(id)
        if state == .registered { return (nil, nil) }
        let token = try f.approve(id).token
        if state == .approved { return (token, nil) }
        let key = try PrivateKey.generateP256()
        try #require(try f.enroll(id, key: key, token: token).status == "issued")
        switch state {
        case .suspended: _ = try f.register.transition(DeviceTransitionParams(id: id, event: "suspend"), actor: "test")
        case .revoked: _ = try f.revocation.revoke(RevokeParams(id: id, reason: "superseded"), actor: "test")
        case .retired:
            _ = try f.revocation.revoke(RevokeParams(id: id, reason: "superseded"), actor: "test")
            _ = try f.register.transition(DeviceTransitionParams(id: id, event: "retire"), actor: "test")
        default: break
        }
        try #require(try f.register.show(id).state == state.rawValue)
        return (token, key)
    }

    /// Applies `event` with the call an operator or a device would make; returns the new state or the error code.
    func apply(_ f: ControllerFixture, _ event: LifecycleEvent, to id: String, token: String?) throws -> String {
        do {
            switch event {
            case .approve: _ = try f.approve(id)
            case .enroll:
                let reply = try f.enroll(id, key: try PrivateKey.generateP256(), token: token ?? "lyt_none")
                if let code = reply.errorCode { return "refused:\(code)" }
            case .suspend, .resume, .retire: _ = try f.register.transition(DeviceTransitionParams(id: id, event: event.rawValue), actor: "test")
            case .revoke: _ = try f.revocation.revoke(RevokeParams(id: id, reason: "superseded"), actor: "test")
            case .replace:
                try f.add(id + "-new")
                _ = try f.call(.deviceReplace, DeviceReplaceParams(id: id, replacement: id + "-new"), as: DeviceView.self, actor: ops)
            }
        } catch let error as WireError {
            return "refused:\(error.code)"
        }
        return try f.register.show(id).state
    }

    @Test("from each state, each event either makes the allowed transition or is refused, leaving the state unchanged",
          arguments: DeviceState.allCases)
    func transitions(from state: DeviceState) throws {
        let f = try ControllerFixture()
        for event in LifecycleEvent.allCases {
            let id = "d-\(event.rawValue)"
            let (token, _) = try device(f, id, in: state)
            let outcome = try apply(f, event, to: id, token: token)
            if let expected = allowed["\(state.rawValue)/\(event.rawValue)"] {
                #expect(outcome == expected, "\(state.rawValue) --\(event.rawValue)--> expected \(expected), got \(outcome)")
            } else {
                #expect(outcome.hasPrefix("refused:"), "\(state.rawValue) --\(event.rawValue)--> must be refused, got \(outcome)")
                #expect(try f.register.show(id).state == state.rawValue, "a refused \(event.rawValue) changed the state")
                // Operator calls refuse with the stable code; enrollment answers the device with its own codes.
                if event != .enroll {
                    #expect(outcome == "refused:invalid_transition", "\(state.rawValue) --\(event.rawValue)--> \(outcome)")
                }
            }
        }
    }

    @Test("Lifecycle.next agrees with the table above for every pair")
    func table() {
        for state in DeviceState.allCases {
            for event in LifecycleEvent.allCases where !(state == .approved && event == .approve) {
                let expected = allowed["\(state.rawValue)/\(event.rawValue)"]
                let actual: String? = try? Lifecycle.next(from: state, on: event).rawValue
                #expect(actual == expected, "\(state.rawValue) \(event.rawValue)")
            }
        }
    }

    @Test("a suspended device's renewal is refused with suspended; once resumed it renews")
    func suspendedRenewalRefused() throws {
        let f = try ControllerFixture()
        let (key, reply) = try f.enrolled("gw-1")
        _ = try f.register.transition(DeviceTransitionParams(id: "gw-1", event: "suspend", reason: "maintenance"), actor: "test")
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256(), currentSerial: reply.serial ?? "").errorCode == "suspended")
        _ = try f.register.transition(DeviceTransitionParams(id: "gw-1", event: "resume"), actor: "test")
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256()).status == "issued")
        _ = key
        #expect(try f.sqlite("SELECT action || ' ' || detail FROM audit WHERE action = 'device.suspend'").contains("before=active after=suspended reason=maintenance"))
    }

    @Test("retiring is refused while a certificate is valid; replace revokes, retires and links both devices")
    func replaceLinks() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-old")
        try f.add("gw-new")
        let old = try f.call(.deviceReplace, DeviceReplaceParams(id: "gw-old", replacement: "gw-new", reason: "hardware fault"),
                             as: DeviceView.self, actor: ops)
        #expect(old.state == "retired")
        #expect(old.replacedBy == "gw-new")
        #expect(try f.register.show("gw-new").replaces == "gw-old")
        #expect(try f.sqlite("SELECT count(*) FROM certificates WHERE device_id = 'gw-old' AND revoked_at IS NULL") == "0\n")
        // A replacement that is already active cannot be linked.
        _ = try f.enrolled("gw-b")
        _ = try f.enrolled("gw-c")
        #expect(wireCode { _ = try f.call(.deviceReplace, DeviceReplaceParams(id: "gw-b", replacement: "gw-c"), as: DeviceView.self, actor: ops) }
                == "invalid_transition")
    }

    @Test("transfer changes owners, keeps the state, audits before and after and requires a new key")
    func transferRequiresRotation() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1", class: "fixed", owners: ["ops": "ot-ops"])
        // Class `fixed` keeps keys, so the same key renews ...
        #expect(try f.renew("gw-1", key: key).status == "issued")
        let after = try f.register.transfer(DeviceTransferParams(id: "gw-1", owners: ["ops": "new-ops", "business": "new-biz"], reason: "sold"), actor: "test")
        #expect(after.state == "active")
        #expect(after.owners["ops"] == "new-ops")
        #expect(after.rotationRequired == "transfer")
        // ... but not after a transfer: the next certificate needs a new key, which clears the mark.
        #expect(try f.renew("gw-1", key: key).errorCode == "key_reused")
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256()).status == "issued")
        #expect(try f.register.show("gw-1").rotationRequired == nil)
        #expect(try f.sqlite("SELECT detail FROM audit WHERE action = 'device.transfer'").contains("before=ops:ot-ops after=business:new-biz,ops:new-ops"))
        // Not after revocation.
        _ = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "superseded"), actor: "test")
        #expect(wireCode { _ = try f.register.transfer(DeviceTransferParams(id: "gw-1", owners: ["ops": "x"]), actor: "test") } == "invalid_transition")
    }
}
