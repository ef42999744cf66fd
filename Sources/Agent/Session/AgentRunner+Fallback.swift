#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension AgentRunner {
    /// At start-up, a second generation on disk means the last swap was never
    /// confirmed by a broker connection (the agent stopped or crashed in
    /// between): watch the current one as if it had just been installed.
    func watchUnconfirmedSwap(current: Credential) {
        guard let previous = store.generations().first(where: { $0 != current.generation }),
              case .success(let old) = store.load(previous, trust: trust, now: Date()) else { return }
        log.info("new certificate not yet confirmed by the broker; keeping the previous generation until it is",
                 ["generation": String(current.generation), "previous": String(previous)])
        fallback.installed(generation: current.generation, previous: previous, previousNotAfter: old.leaf.notAfter)
    }

    func perform(_ action: CredentialFallback.Action) {
        switch action {
        case .none:
            break
        case .commit(let generation):
            store.commitCurrent()
            log.info("new certificate accepted by the broker; previous generation erased", ["generation": String(generation)])
        case .keepTrying(let refused):
            log.error("new certificate refused by the broker and the previous one has expired; keeping gen-\(refused)")
            updateState { $0.lastError = "new certificate refused by the broker; previous generation expired" }
        case .revert(let refused, let previous):
            do {
                let restored = try store.revert(to: previous, trust: trust, now: Date())
                credential = restored
                log.warning("new certificate refused by the broker; fell back to the previous generation",
                            ["refused": "gen-\(refused)", "generation": "gen-\(previous)", "serial": restored.leaf.serialHex])
                updateState {
                    $0.serial = restored.leaf.serialHex
                    $0.notAfter = Int64(restored.leaf.notAfter.timeIntervalSince1970)
                    $0.lastError = "new certificate refused by the broker; fell back to gen-\(previous)"
                }
                notifier.notify("STATUS=active serial=\(restored.leaf.serialHex) (fallback)")
                // Not at once: whatever made the broker refuse the new
                // certificate is likely still true a second later.
                retryAttempt += 1
                let delay = RenewalSchedule.retryDelay(attempt: retryAttempt, cap: configuration.maxRetryDelay.timeInterval,
                                                       remaining: restored.leaf.notAfter.timeIntervalSinceNow, using: &rng)
                // Also the deadline checked on (re)connect, so a timer that
                // fires while offline is not lost.
                scheduleRenewal(after: delay)
                renewalDeadline = Date().addingTimeInterval(delay)
                client?.reconnectNow()
            } catch {
                log.error("cannot fall back to the previous generation; keeping gen-\(refused)", ["error": "\(error)"])
                updateState { $0.lastError = "new certificate refused by the broker; fallback failed: \(error)" }
            }
        }
    }
}
