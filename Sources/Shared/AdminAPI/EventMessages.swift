#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `event.post`: a lifecycle event from an operator or a change-management
/// system, for one device or every device a selector matches.
package struct EventPostParams: Codable, Sendable {
    /// ca.rotated, vendor.changed, firmware.updated, ownership.transferred,
    /// policy.changed, device.replaced, device.compromised, device.retired
    package var type: String
    package var device: String?
    package var selector: String?
    package var reason: String
    /// The event's id in the system that raised it (change ticket, CVE…), for the audit trail.
    package var ref: String?

    package init(type: String, device: String? = nil, selector: String? = nil, reason: String, ref: String? = nil) {
        self.type = type
        self.device = device
        self.selector = selector
        self.reason = reason
        self.ref = ref
    }
}

/// The retirement check of one device: did its agent confirm the key wipe?
package struct RetirementCheck: Codable, Sendable, Equatable {
    package var id: String
    /// The agent acknowledged the signed `retire` command (it erases every key, then stops for good).
    package var keyWipeAcknowledged: Bool
    /// The register says retired.
    package var retired: Bool
    /// Someone must look at the device: it held a credential and did not confirm the wipe, or it could not be retired.
    package var flagged: Bool
    package var note: String?

    package init(id: String, keyWipeAcknowledged: Bool, retired: Bool, flagged: Bool = false, note: String? = nil) {
        self.id = id
        self.keyWipeAcknowledged = keyWipeAcknowledged
        self.retired = retired
        self.flagged = flagged
        self.note = note
    }
}

package struct EventResult: Codable, Sendable {
    package var type: String
    /// `campaign`, `revoke` or `retire`.
    package var action: String
    package var campaign: CampaignView?
    package var revocation: RevokeSelectedResult?
    package var retirements: [RetirementCheck]?
    /// `device.compromised`: the revoked devices approved again because their
    /// class allows it, each with its new one-time token (shown once) to
    /// provision out of band; the agent enrolls with a new key when restarted.
    package var reapprovals: [ApprovalResult]?

    package init(type: String, action: String, campaign: CampaignView? = nil, revocation: RevokeSelectedResult? = nil,
                 retirements: [RetirementCheck]? = nil) {
        self.type = type
        self.action = action
        self.campaign = campaign
        self.revocation = revocation
        self.retirements = retirements
    }
}
