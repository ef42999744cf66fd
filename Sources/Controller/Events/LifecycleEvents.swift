import Foundation
import Shared

/// A campaign template for one event type (`[event.TYPE]` in controller.conf).
package struct CampaignTemplate: Sendable, Equatable {
    package var rollout = CampaignRollout(retries: 1)
    /// Start the campaign at once (false: it waits in draft for an operator).
    package var autoStart = true

    package init() {}
}

/// Turns lifecycle events into actions. Events that call for new
/// credentials become a rotation campaign from the event type's template
/// (started at once unless the template says otherwise); a compromised
/// device is revoked at once (`keyCompromise`); a retired device is told to
/// wipe its keys (signed `retire`), then revoked (`cessationOfOperation`)
/// and retired in the register, with a retirement check recording whether
/// the wipe was acknowledged. Every event is audited with who posted it and
/// its reference.
package struct LifecycleEvents: Sendable {
    package static let campaignTypes: Set<String> = ["ca.rotated", "vendor.changed", "firmware.updated", "ownership.transferred",
                                                     "policy.changed", "device.replaced"]
    package static let allTypes = campaignTypes.union(["device.compromised", "device.retired"])

    let store: Store
    let register: DeviceRegister
    let campaigns: CampaignService
    let revocation: RevocationService
    let commands: CommandSender
    let templates: [String: CampaignTemplate]
    let clock: @Sendable () -> Date
    /// How long retiring agents get to acknowledge the wipe before the revocation goes ahead.
    var wipeWait: Duration = .seconds(5)
    /// Lifetime of the token of a device approved again after a compromise.
    package var tokenTTL: Duration = .seconds(86400)

    package init(store: Store, register: DeviceRegister, campaigns: CampaignService, revocation: RevocationService, commands: CommandSender,
                 templates: [String: CampaignTemplate], clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.register = register
        self.campaigns = campaigns
        self.revocation = revocation
        self.commands = commands
        self.templates = templates
        self.clock = clock
    }

    package func post(_ p: EventPostParams, actor: String) throws -> EventResult {
        guard LifecycleEvents.allTypes.contains(p.type) else {
            throw WireError(.badRequest, "event type must be one of \(LifecycleEvents.allTypes.sorted().joined(separator: ", "))")
        }
        guard (p.device == nil) != (p.selector == nil) else { throw WireError(.badRequest, "name either a device or a selector") }
        let reason = p.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= 256 else { throw WireError(.badRequest, "a reason (1 to 256 characters) is required") }
        if let device = p.device { guard DeviceID(device) != nil else { throw WireError(.badRequest, "malformed device id") } }
        let selector = p.selector ?? "id=\(p.device ?? "")"
        let ref = p.ref.map { String($0.prefix(128)) }
        try store.withConnection { db in
            try db.audit(time: clock(), actor: actor, action: "event.\(p.type)", target: String(selector.prefix(256)), outcome: "received",
                         detail: "reason=\(reason.prefix(128))\(ref.map { " ref=\($0)" } ?? "")")
        }
        let why = ref.map { "\(reason) (\($0))" } ?? reason
        switch p.type {
        case "device.compromised":
            let result = try revocation.revokeSelected(RevokeSelectedParams(selector: selector, reason: "keyCompromise"), register: register, actor: actor)
            // Then re-enrollment where the class allows it: a new token (the old key is burnt), enrolled with a new key.
            var reapprovals: [ApprovalResult] = []
            for id in result.results.map(\.id) {
                guard let device = try? register.show(id), device.state == DeviceState.revoked.rawValue,
                      register.policies.current(device.deviceClass)?.policy.reapproveAfterRevocation == true else { continue }
                reapprovals.append(try register.approve(DeviceApproveParams(id: id), defaultTTL: tokenTTL, actor: actor))
            }
            var answer = EventResult(type: p.type, action: "revoke", revocation: result)
            answer.reapprovals = reapprovals.isEmpty ? nil : reapprovals
            return answer
        case "device.retired":
            return try retire(selector: selector, reason: why, type: p.type, actor: actor)
        default:
            let t = templates[p.type] ?? CampaignTemplate()
            var campaign = try campaigns.create(CampaignCreateParams(trigger: p.type, reason: why, selector: selector, rollout: t.rollout),
                                                register: register, actor: actor)
            if t.autoStart { campaign = try campaigns.start(CampaignRef(id: campaign.id, reason: "event \(p.type)"), actor: actor) }
            return EventResult(type: p.type, action: "campaign", campaign: campaign)
        }
    }

    /// Wipe, revoke, retire, and record for each device whether the wipe was confirmed.
    private func retire(selector text: String, reason: String, type: String, actor: String) throws -> EventResult {
        let selector = try Selector(text, keys: Selector.revocationKeys, maxTerms: 8)
        let devices = try register.select(selector)
        guard !devices.isEmpty else { throw WireError(.notFound, "the selector \(text) matches no device") }
        // 1 — the signed retire command to every device that still has a credential.
        var sent: [String: String] = [:]
        for d in devices where [DeviceState.active.rawValue, DeviceState.suspended.rawValue].contains(d.state) {
            if let id = DeviceID(d.id), let jti = commands.sendReturningID(to: id, command: "retire", args: ["reason": String(reason.prefix(64))]) {
                sent[d.id] = jti
            }
        }
        // 2 — their acknowledgements (the agent acks, wipes, exits), for a few seconds.
        var acknowledged: Set<String> = []
        let deadline = ContinuousClock.now + wipeWait
        while ContinuousClock.now < deadline, acknowledged.count < sent.count {
            for (device, jti) in sent where !acknowledged.contains(device) {
                let outcome = try store.withConnection { db in
                    try db.query("SELECT outcome FROM commands WHERE jti = ?", [.text(jti)]).first?.first?.text
                }
                if outcome == "done" { acknowledged.insert(device) }
            }
            if acknowledged.count < sent.count { Thread.sleep(forTimeInterval: 0.05) }
        }
        // 3 — revoke (whatever the agents did) and retire in the register.
        let revocation = try revocation.revokeSelected(RevokeSelectedParams(selector: text, reason: "cessationOfOperation"), selected: devices, actor: actor)
        var checks: [RetirementCheck] = []
        for d in devices {
            var check = RetirementCheck(id: d.id, keyWipeAcknowledged: acknowledged.contains(d.id), retired: d.state == DeviceState.retired.rawValue)
            if !check.retired {
                do {
                    _ = try register.transition(DeviceTransitionParams(id: d.id, event: "retire", reason: String(reason.prefix(200))), actor: actor)
                    check.retired = true
                } catch let error as WireError {
                    check.note = error.description
                }
            }
            if !check.keyWipeAcknowledged {
                check.note = [check.note, sent[d.id] == nil ? "no credential to wipe" : "the agent did not confirm the key wipe: check the device"]
                    .compactMap { $0 }.joined(separator: "; ")
            }
            check.flagged = !check.retired || (!check.keyWipeAcknowledged && sent[d.id] != nil)
            try store.withConnection { db in
                try db.audit(time: clock(), actor: actor, action: "device.retirement-check", target: d.id, outcome: check.flagged ? "flagged" : "ok",
                             detail: "key_wipe_acknowledged=\(check.keyWipeAcknowledged) retired=\(check.retired)\(check.note.map { " note=\($0.prefix(160))" } ?? "")")
            }
            checks.append(check)
        }
        return EventResult(type: type, action: "retire", revocation: revocation, retirements: checks)
    }
}
