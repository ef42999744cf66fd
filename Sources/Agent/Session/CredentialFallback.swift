#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Watches a freshly installed generation until the broker has accepted it.
///
/// A certificate the controller issued can still be refused by the broker
/// (its issuer not yet in the broker's CA file, its serial on a CRL that
/// raced the issuance). Until the new generation has completed one broker
/// connection the previous one stays on disk; after `threshold` consecutive
/// failed attempts with the new one, the agent goes back to the previous
/// one while it is still valid. A state machine returning actions: the
/// runner does the file work and the reconnect.
package struct CredentialFallback: Sendable, Equatable {
    package enum Action: Sendable, Equatable {
        case none
        /// The new generation worked: erase every other one.
        case commit(generation: Int)
        /// The new generation was refused: make `previous` current again.
        case revert(refused: Int, previous: Int)
        /// Refused, but the previous generation has expired too: keep trying the new one.
        case keepTrying(refused: Int)
    }

    package struct Watch: Sendable, Equatable {
        package var generation: Int
        package var previous: Int
        package var previousNotAfter: Date
        package var failures = 0
    }

    /// Consecutive failed connection attempts that count as a refusal. One is
    /// not enough: a broker restart or a network blip also fails one attempt.
    package var threshold = 2
    package private(set) var watch: Watch?

    package init(threshold: Int = 2) { self.threshold = threshold }

    /// A new generation is current; `previous` is what it replaced (nil after enrollment).
    package mutating func installed(generation: Int, previous: Int?, previousNotAfter: Date?) {
        if let previous, let previousNotAfter {
            watch = Watch(generation: generation, previous: previous, previousNotAfter: previousNotAfter)
        } else {
            watch = nil
        }
    }

    /// A broker session with `generation` is up.
    package mutating func connected(generation: Int) -> Action {
        guard let w = watch else { return .none }
        watch = nil
        // Connected on the previous generation (a swap not yet reconnected):
        // nothing proven about the new one, but nothing to erase either.
        return w.generation == generation ? .commit(generation: generation) : .none
    }

    /// A connection attempt failed or a session ended before `.connected`.
    /// `deliberate` is the disconnect the agent asked for to pick up the new
    /// certificate: that was the old session, not a refusal of the new one.
    package mutating func connectionFailed(deliberate: Bool, now: Date) -> Action {
        guard var w = watch, !deliberate else { return .none }
        w.failures += 1
        guard w.failures >= threshold else {
            watch = w
            return .none
        }
        watch = nil
        guard w.previousNotAfter > now else { return .keepTrying(refused: w.generation) }
        return .revert(refused: w.generation, previous: w.previous)
    }
}
