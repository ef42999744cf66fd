#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When to renew and how long to wait after a failure.
package enum RenewalSchedule {
    /// A point at `fraction` of the lifetime (from the controller's issuance
    /// time, not the backdated notBefore), spread by ±`jitter` of the lifetime
    /// so a fleet issued together does not renew together.
    package static func deadline(issuedAt: Date, notAfter: Date, fraction: Double, jitter: Double,
                                 using random: inout some RandomNumberGenerator) -> Date {
        let lifetime = max(1, notAfter.timeIntervalSince(issuedAt))
        let spread = jitter > 0 ? Double.random(in: -jitter...jitter, using: &random) : 0
        let f = min(0.95, max(0.05, fraction + spread))
        return issuedAt.addingTimeInterval(lifetime * f)
    }

    /// Exponential backoff with full jitter: uniform in [0.5 s, min(cap, 2^attempt s)].
    /// Close to expiry the cap shrinks to a tenth of what is left, so the last
    /// part of the lifetime is still used for attempts.
    package static func retryDelay(attempt: Int, cap: Double, remaining: TimeInterval,
                                   using random: inout some RandomNumberGenerator) -> Double {
        let effectiveCap = max(1, min(cap, remaining / 10))
        let ceiling = min(effectiveCap, Double(1 << min(attempt, 30)))
        return Double.random(in: min(0.5, ceiling)...ceiling, using: &random)
    }
}
