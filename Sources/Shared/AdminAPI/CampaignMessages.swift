#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// How a campaign rolls out: the same settings in a request, a campaign's
/// view and an event type's template (controller.conf `[event.TYPE]`).
package struct CampaignRollout: Codable, Sendable, Equatable {
    /// Devices sent the rotate command in any 60 s.
    package var maxPerMinute: Int = 60
    /// This many devices (the first ones) must succeed before any other is sent.
    package var canary: Int = 0
    /// Abort when failures (failed + timed out) reach this share of executed devices…
    package var abortFailurePercent: Double?
    /// …once at least this many have executed.
    package var abortMinExecuted: Int = 1
    /// Seconds a sent device has to report its new certificate.
    package var deviceTimeout: Int = 600
    /// How often a timed-out device is sent the command again.
    package var retries: Int = 0
    /// Seconds from the start during which offline devices are waited for.
    package var window: Int = 86400
    /// Which failures count toward `abortFailurePercent`: `failed` (the
    /// device refused or the issuance failed), `timed_out`, or nil/`all` for both.
    package var abortFailureType: String?
    /// Exponential ramp (AWS IoT Jobs' `exponentialRate`): start at this many
    /// devices a minute and multiply the rate by `rampFactor` each time
    /// another `rampEverySucceeded` devices have succeeded, up to `maxPerMinute`.
    package var rampBasePerMinute: Int?
    package var rampFactor: Double?
    package var rampEverySucceeded: Int?

    /// The highest `maxPerMinute` (100,000 devices a second): no rate limit;
    /// the controller's in-flight window paces such a campaign.
    package static let unlimitedPerMinute = 6_000_000

    /// The rate after `succeeded` devices: the ramp's step, or `maxPerMinute` without a ramp.
    package func ratePerMinute(succeeded: Int) -> Int {
        guard let base = rampBasePerMinute, let factor = rampFactor, let every = rampEverySucceeded, every > 0 else { return maxPerMinute }
        let steps = Double(succeeded / every)
        let rate = Double(base) * pow(factor, steps)
        return rate >= Double(maxPerMinute) ? maxPerMinute : max(1, Int(rate))
    }

    package init(maxPerMinute: Int = 60, canary: Int = 0, abortFailurePercent: Double? = nil, abortMinExecuted: Int = 1, deviceTimeout: Int = 600,
                 retries: Int = 0, window: Int = 86400) {
        self.maxPerMinute = maxPerMinute
        self.canary = canary
        self.abortFailurePercent = abortFailurePercent
        self.abortMinExecuted = abortMinExecuted
        self.deviceTimeout = deviceTimeout
        self.retries = retries
        self.window = window
    }
}

/// `campaign.create`: a rotation campaign over the devices a selector matches
/// (resolved when it is created: the campaign's device list does not change).
package struct CampaignCreateParams: Codable, Sendable {
    /// What caused it: an event type (`ca.rotated`, `firmware.updated`, …) or `manual`.
    package var trigger: String
    package var reason: String
    /// As for revocation: `key=value` terms joined by commas (id, class, site, zone, vendor, model, firmware, tag).
    package var selector: String
    package var rollout: CampaignRollout

    package init(trigger: String, reason: String, selector: String, rollout: CampaignRollout) {
        self.trigger = trigger
        self.reason = reason
        self.selector = selector
        self.rollout = rollout
    }
}

/// `campaign.start`, `.pause`, `.resume`, `.cancel`, `.status`.
package struct CampaignRef: Codable, Sendable {
    package var id: String
    package var reason: String?
    package init(id: String, reason: String? = nil) {
        self.id = id
        self.reason = reason
    }
}

package struct CampaignDeviceView: Codable, Sendable, Equatable {
    package var id: String
    /// queued, waiting, sent, succeeded, failed, timed_out, skipped
    package var state: String
    package var attempts: Int
    package var code: String?
    package var issuedSerial: String?

    package init(id: String, state: String, attempts: Int, code: String?, issuedSerial: String?) {
        self.id = id
        self.state = state
        self.attempts = attempts
        self.code = code
        self.issuedSerial = issuedSerial
    }
}

package struct CampaignView: Codable, Sendable {
    package var id: String
    package var trigger: String
    package var reason: String
    package var selector: String
    /// draft, running, paused, completed, aborted, cancelled
    package var state: String
    package var rollout: CampaignRollout
    package var createdBy: String
    package var createdAt: Int64
    package var startedAt: Int64?
    package var endedAt: Int64?
    package var endReason: String?
    /// Devices by execution state.
    package var counts: [String: Int]
    package var total: Int
    /// Present in `campaign.status`, absent in `campaign.list`.
    package var devices: [CampaignDeviceView]?

    package init(id: String, trigger: String, reason: String, selector: String, state: String, rollout: CampaignRollout, createdBy: String,
                 createdAt: Int64, startedAt: Int64?, endedAt: Int64?, endReason: String?, counts: [String: Int], total: Int,
                 devices: [CampaignDeviceView]?) {
        self.id = id
        self.trigger = trigger
        self.reason = reason
        self.selector = selector
        self.state = state
        self.rollout = rollout
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.endReason = endReason
        self.counts = counts
        self.total = total
        self.devices = devices
    }

    /// No device left to act on.
    package var isFinished: Bool { ["completed", "aborted", "cancelled"].contains(state) }
}

package struct CampaignListResult: Codable, Sendable {
    package var campaigns: [CampaignView]
    package init(campaigns: [CampaignView]) { self.campaigns = campaigns }
}
