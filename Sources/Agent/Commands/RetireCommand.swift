#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Shared

extension AgentRunner {
    /// `retire`: the device leaves the fleet for good. The ack and the
    /// `retired` state go out first (afterwards there is no credential left
    /// to send them with), then every credential, the enrollment token when
    /// it lives in the state directory, and the agent state are erased, and a
    /// marker keeps a restart from doing anything. Exit status 4 tells
    /// systemd not to restart (RestartPreventExitStatus).
    func retire(jti: String) -> Exit {
        log.warning("retiring: erasing every credential and the agent state", ["device": configuration.deviceID.rawValue])
        timer?.cancel()
        pending = nil
        fallback = CredentialFallback()
        ack(CommandAck(jti: jti, outcome: "done"))
        publishState("retired")
        // Give the ack and state a moment to leave before the connection closes.
        usleepSeconds(0.5)
        client?.stop()
        store.eraseAll()
        credential = nil
        if let token = configuration.tokenFile, AgentRunner.isInside(token, directory: configuration.stateDirectory) {
            unlink(token)
        }
        unlink(AgentState.path(in: configuration.stateDirectory))
        do {
            try RetiredMarker.write(in: configuration.stateDirectory, at: Date())
        } catch {
            // The credentials are gone either way; without the marker a restart
            // finds no credential and (with no token) exits 3, also final.
            log.error("cannot write the retired marker", ["error": "\(error)"])
        }
        _ = try? AtomicFile.syncDirectory(of: RetiredMarker.path(in: configuration.stateDirectory))
        notifier.notify("STATUS=retired")
        return .retired
    }

    static func isInside(_ path: String, directory: String) -> Bool {
        let dir = AtomicFile.absolutePath(directory)
        let file = AtomicFile.absolutePath(path)
        return file.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }
}
