#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// The runner's clock handling (TrustedClock): which "now" certificate checks
/// use, where a lifetime measured on the controller's clock falls on this
/// device's clock, and a renewal timer that a wall-clock step does not move.
extension AgentRunner {
    /// Seconds between broker attempts once the certificate has expired
    /// (DESIGN §4: no tight reconnect loop); at most four TLS attempts a minute.
    static let expiredReconnectFloor: Double = 15

    /// "Now" for start-up recovery: the later of the system clock, the last
    /// time this agent saved its state (on the controller's timeline, so a
    /// clock that ran a day ahead and was since corrected does not make every
    /// certificate look expired), and `minimumPlausibleDate`, so a gateway
    /// that boots in 1970 does not throw away a good credential.
    func startupNow() -> Date {
        let lastPersisted = state.updatedAt > 0 ? state.updatedAt - (state.clockSkewSeconds ?? 0) : nil
        let (now, correction) = TrustedClock.now(lastPersisted: lastPersisted)
        if correction > TrustedClock.skewTolerance {
            log.warning("system clock is behind the agent's last saved state or the release date; using the later time",
                        ["behind_seconds": String(Int64(correction)), "using": now.formatted(.iso8601)])
        }
        return now
    }

    /// Start-up recovery on the trusted clock; when nothing is usable there
    /// and a large skew was measured before the restart, once more on the
    /// controller's timeline (a clock a day ahead usually still is).
    /// Recovery erases nothing when it finds nothing, so a second pass is safe.
    func recoverCredential() -> (credential: Credential?, repairs: [String]) {
        let now = startupNow()
        let first = store.recover(trust: trust, now: now)
        recoveredGeneration = first.credential?.generation
        guard first.credential == nil, let skew = state.clockSkewSeconds, abs(skew) > Int64(TrustedClock.skewTolerance) else { return first }
        let second = store.recover(trust: trust, now: now.addingTimeInterval(-TimeInterval(skew)))
        recoveredGeneration = second.credential?.generation
        if second.credential != nil {
            log.warning("credential valid only on the controller's timeline; the device clock is still off", ["skew_seconds": String(skew)])
        }
        return (second.credential, first.repairs + second.repairs)
    }

    /// The controller's time, estimated from the skew measured at the last
    /// reply: what notAfter is compared with.
    func controllerNow() -> Date {
        Date().addingTimeInterval(-TimeInterval(state.clockSkewSeconds ?? 0))
    }

    /// A credential's lifetime on this device's clock: it starts when the
    /// reply was received (`receivedAt`, device clock), not at the
    /// controller's `issuedAt`, and lasts as long as the controller said.
    /// A large skew measured before this process started may be stale (NTP
    /// may have set the clock right meanwhile): then the earlier of the two
    /// readings is used, since renewing early costs one request and renewing
    /// late costs the credential; the reply measures the skew afresh.
    func localLifetime(of credential: Credential) -> (start: Date, end: Date) {
        let meta = credential.metadata
        let skew = TrustedClock.skew(receivedAt: meta.receivedAt, issuedAt: meta.issuedAt)
        let received = (start: Date(timeIntervalSince1970: TimeInterval(meta.receivedAt)),
                        end: credential.leaf.notAfter.addingTimeInterval(TimeInterval(skew)))
        guard abs(skew) > Int64(TrustedClock.skewTolerance), credential.generation == recoveredGeneration else { return received }
        let asIs = (start: Date(timeIntervalSince1970: TimeInterval(meta.issuedAt)), end: credential.leaf.notAfter)
        return asIs.end < received.end ? asIs : received
    }

    /// Records the skew a certificate reply revealed, warning when it is large.
    func recordSkew(receivedAt: Int64, issuedAt: Int64?) {
        guard let issuedAt else { return }
        let skew = TrustedClock.skew(receivedAt: receivedAt, issuedAt: issuedAt)
        if abs(skew) > TrustedClock.reportableSkew {
            log.warning("clock skew against the controller; renewing on the controller's timeline",
                        ["skew_seconds": String(skew), "controller_time": String(issuedAt)])
        }
        updateState { $0.clockSkewSeconds = skew }
    }

    /// Sleeps until `deadline` (device clock, as it reads now) on the
    /// monotonic clock, so that a wall-clock step after scheduling (NTP
    /// catching up, a manual change) neither delays a renewal past expiry nor
    /// fires it early; steps are logged. Returns false when cancelled.
    static func sleep(until deadline: Date, log: Logger) async -> Bool {
        let clock = ContinuousClock()
        let due = clock.now + .seconds(max(0, deadline.timeIntervalSinceNow))
        while clock.now < due {
            let (wallStart, monotonicStart) = (Date(), clock.now)
            do { try await clock.sleep(until: min(due, monotonicStart + .seconds(300))) } catch { return false }
            let monotonic = (clock.now - monotonicStart) / .seconds(1)
            if let jump = TrustedClock.jump(wallElapsed: Date().timeIntervalSince(wallStart), monotonicElapsed: monotonic) {
                log.warning("wall clock stepped; the renewal timer keeps its monotonic deadline", ["step_seconds": String(Int64(jump))])
            }
        }
        return true
    }
}
