#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The agent's idea of the time, for certificate checks. A gateway without a
/// real-time clock boots in 1970 until NTP answers, NTP may step the clock by
/// hours, and an operator may set it by hand: the system clock alone cannot
/// decide whether a certificate is valid. DESIGN §4: use the later of the
/// system clock, the last time the agent persisted, and the build time; and
/// learn the offset to the controller from its replies (`issuedAt`).
package enum TrustedClock {
    /// No certificate this agent handles predates this release, so a system
    /// clock earlier than this is certainly wrong. SwiftPM cannot stamp the
    /// build time into the binary, so this stands in for it: 2026-01-01T00:00:00Z,
    /// raised with each release.
    package static let minimumPlausibleDate = Date(timeIntervalSince1970: 1_767_225_600)

    /// How far a device clock may lag a certificate's notBefore and still be
    /// taken as the usual small skew: the controller's default backdate.
    package static let skewTolerance: TimeInterval = 300

    /// Skew (device minus controller) above which the agent warns.
    package static let reportableSkew: Int64 = 60

    /// The later of `system`, the last time the agent saved its state, and
    /// `minimumPlausibleDate`. `correction` is how far that is ahead of the
    /// system clock (0 when the system clock is the latest of the three).
    package static func now(system: Date = Date(), lastPersisted: Int64?) -> (now: Date, correction: TimeInterval) {
        var best = max(system, minimumPlausibleDate)
        if let lastPersisted, lastPersisted > 0 {
            best = max(best, Date(timeIntervalSince1970: TimeInterval(lastPersisted)))
        }
        return (best, best.timeIntervalSince(system))
    }

    /// Device clock minus controller clock, in seconds, from a reply received
    /// at `receivedAt` (device clock) and issued at `issuedAt` (controller
    /// clock). Positive: the device is ahead. Includes the network delay,
    /// which is small against the skews that matter.
    package static func skew(receivedAt: Int64, issuedAt: Int64) -> Int64 {
        receivedAt - issuedAt
    }

    /// A wall-clock step seen by a timer: how far the wall clock moved beyond
    /// (or short of) the monotonic clock over the same interval, or nil when
    /// they agree within `threshold` seconds.
    package static func jump(wallElapsed: TimeInterval, monotonicElapsed: TimeInterval, threshold: TimeInterval = 2) -> TimeInterval? {
        let difference = wallElapsed - monotonicElapsed
        return abs(difference) > threshold ? difference : nil
    }
}
