#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension AgentRunner {
    /// Starts the configured hook for `event` off the event loop; its outcome
    /// comes back as `.hookFinished` on the agent's event stream.
    func runHook(_ event: HookContext.Event, for credential: Credential) {
        guard let command = configuration.hooks.command(for: event) else { return }
        let context = HookContext(event: event, deviceID: configuration.deviceID.rawValue,
                                  certificatePath: "\(store.currentLink)/cert.pem", keyPath: store.keyPath, chainPath: store.certificatePath,
                                  serial: credential.leaf.serialHex, notAfter: Int64(credential.leaf.notAfter.timeIntervalSince1970))
        log.info("running hook", ["event": event.rawValue, "serial": context.serial])
        let continuation = self.continuation
        HookRunner.launch(command, context: context, timeout: configuration.hooks.timeout) { outcome in
            continuation?.yield(.hookFinished(outcome))
        }
    }

    /// A hook's failure is reported, never acted on: the credential it ran
    /// for is good and stays installed.
    func hookFinished(_ outcome: HookOutcome) {
        guard !outcome.succeeded else {
            log.info("hook succeeded", ["event": outcome.event.rawValue])
            return
        }
        log.warning("hook failed; the credential stays installed", ["event": outcome.event.rawValue, "status": outcome.description])
        updateState {
            $0.hookFailures = ($0.hookFailures ?? 0) + 1
            $0.lastError = "on_\(outcome.event.rawValue) hook failed: \(outcome.description)"
        }
    }
}
