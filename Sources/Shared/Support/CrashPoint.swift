#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Named points where the crash-safety tests kill the agent with SIGKILL, as
/// `kill -9` from outside would, but at an exact step of a rotation. Active
/// only when `LANYARD_TEST_CRASH_AT` names the point (and, optionally,
/// `LANYARD_TEST_CRASH_AFTER` says how many passes to let through first).
package enum CrashPoint: String, Sendable, CaseIterable {
    case afterKeyGeneration = "after-keygen"
    case afterRequestPublished = "after-publish"
    case afterReplyReceived = "after-reply"
    case midWrite = "mid-write"
    case afterSwap = "after-swap"

    private static let armed: (name: String, skip: Int)? = {
        let env = ProcessInfo.processInfo.environment
        guard let name = env["LANYARD_TEST_CRASH_AT"], !name.isEmpty else { return nil }
        return (name, Int(env["LANYARD_TEST_CRASH_AFTER"] ?? "0") ?? 0)
    }()

    nonisolated(unsafe) private static var passes = 0

    /// Dies here if this point is armed. Called from the agent's single event
    /// loop (and the store it drives), so the pass counter needs no lock.
    package func reach() {
        guard let armed = CrashPoint.armed, armed.name == rawValue else { return }
        CrashPoint.passes += 1
        guard CrashPoint.passes > armed.skip else { return }
        Logger.writeStandardError("crash point \(rawValue): SIGKILL\n")
        kill(getpid(), SIGKILL)
    }
}
