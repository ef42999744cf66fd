#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// `lanyard-agent status`: what the credential is doing, read from the state
/// directory (works whether or not the agent runs).
package struct StatusReport: Codable, Sendable {
    package var device: String
    package var state: String
    package var serial: String?
    package var notAfter: Int64?
    package var secondsLeft: Int64?
    package var nextRenewal: Int64?
    package var lastError: String?
    package var connected: Bool
    package var renewals: Int
    /// Hooks that failed or timed out (see lastError for the latest).
    package var hookFailures: Int
    package var generations: [Int]
    /// healthy, degraded (an error since the last success), unenrolled, expired, revoked or retired.
    package var health: String
    /// Device clock minus controller clock, seconds, from the last reply (TrustedClock).
    package var clockSkewSeconds: Int64? = nil

    package static func read(_ configuration: AgentConfiguration, now: Date = Date()) -> StatusReport {
        var state = AgentState.load(from: configuration.stateDirectory)
        // `retire` erased the state file and left only this marker.
        if RetiredMarker.exists(in: configuration.stateDirectory) { state.state = "retired" }
        var serial = state.serial
        var notAfter = state.notAfter
        var generations: [Int] = []
        if let store = try? CredentialStore(directory: configuration.stateDirectory, deviceID: configuration.deviceID, create: false) {
            generations = store.generations()
            if let pem = try? AtomicFile.readText(store.certificatePath), let leaf = try? Certificate(pem: pem) {
                serial = leaf.serialHex
                notAfter = Int64(leaf.notAfter.timeIntervalSince1970)
            }
        }
        // On the controller's timeline: with the device clock a day ahead, a
        // fresh certificate must not read as expired (nor a dead one as alive
        // with the clock behind).
        let t = Int64(now.timeIntervalSince1970) - (state.clockSkewSeconds ?? 0)
        let left = notAfter.map { $0 - t }
        let health: String
        if serial == nil && state.state == "enrolling" {
            health = "unenrolled"
        } else if state.state == "retired" {
            health = "retired"
        } else if state.state == "revoked" || state.state == "expired" || (left ?? -1) <= 0 {
            health = state.state == "revoked" ? "revoked" : "expired"
        } else if state.lastError != nil {
            health = "degraded"
        } else {
            health = "healthy"
        }
        var report = StatusReport(device: configuration.deviceID.rawValue, state: state.state, serial: serial, notAfter: notAfter, secondsLeft: left,
                            nextRenewal: state.nextRenewal, lastError: state.lastError, connected: state.connected, renewals: state.renewals,
                            hookFailures: state.hookFailures ?? 0, generations: generations, health: health)
        report.clockSkewSeconds = state.clockSkewSeconds
        return report
    }

    /// 0 healthy, 1 degraded, 2 unenrolled, expired, revoked or retired.
    package var exitStatus: Int32 {
        switch health {
        case "healthy": 0
        case "degraded": 1
        default: 2
        }
    }

    package var text: String {
        func time(_ t: Int64?) -> String { t.map { Date(timeIntervalSince1970: TimeInterval($0)).formatted(.iso8601) } ?? "-" }
        return """
        device        \(device)
        state         \(state) (\(health))
        serial        \(serial ?? "-")
        not after     \(time(notAfter))\(secondsLeft.map { " (\($0) s left)" } ?? "")
        next renewal  \(time(nextRenewal))
        broker        \(connected ? "connected" : "not connected")
        renewals      \(renewals)
        hook failures \(hookFailures)
        generations   \(generations.isEmpty ? "-" : generations.map { "gen-\($0)" }.joined(separator: ", "))
        last error    \(lastError ?? "-")
        clock skew    \(clockSkewSeconds.map { "\($0) s (device minus controller)" } ?? "-")
        """
    }
}
