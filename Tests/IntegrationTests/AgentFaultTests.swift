import Foundation
import Shared
import Testing
import TestSupport

/// Faults outside the agent: the controller away for most of a lifetime, and
/// a device clock that is wrong or jumps. Real broker, controller and agents.
@Suite("Agent under faults over a real Mosquitto", .serialized)
struct AgentFaultTests {
    @Test("controller down until 90 % of the TTL: the agent stays connected, spreads its retries, renews soon after the controller returns")
    func controllerDownUntilNinetyPercent() async throws {
        // 60 s lifetimes: renewal falls due at ~40 s, the controller returns at 54 s.
        let fleet = try Fleet(ttl: "60s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let id = "gw-patient"
        try fleet.register(id)
        // Short timeouts so the retries fit in the last tenth of a 60 s lifetime.
        try fleet.setAgentOption(id, section: "renewal", "request_timeout", "1s")

        // 01 — enrolled and connected; then the controller goes away.
        try fleet.startAgent(id)
        try await fleet.wait("the agent to enroll and connect", timeout: 20) {
            let s = try fleet.agentStatus(id)
            return s["state"] as? String == "active" && s["connected"] as? Bool == true
        }
        let first = try fleet.agentStatus(id)
        let notAfter = Date(timeIntervalSince1970: TimeInterval(first["notAfter"] as? Int ?? 0))
        fleet.stopController()

        // 02 — until 90 % of the lifetime: connected all along, asking again and again.
        var samples = 0, disconnected = 0
        let back = notAfter.addingTimeInterval(-6)
        while Date() < back {
            let s = try fleet.agentStatus(id)
            samples += 1
            if s["connected"] as? Bool != true { disconnected += 1 }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(samples > 20 && disconnected == 0, "lost the broker while the certificate was valid: \(disconnected) of \(samples) samples")
        let requests = fleet.agentLogTimes(id, containing: "renewal requested")
        #expect(requests.count >= 3, "expected several attempts while the controller was down, saw \(requests.count)")
        let gaps = zip(requests.dropFirst(), requests).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 1 }, "retries faster than the request timeout: \(gaps)")
        let spread = (gaps.max() ?? 0) - (gaps.min() ?? 0)
        #expect(gaps.count < 2 || spread > 0.05, "retries are not spread: \(gaps)")

        // 03 — the controller returns: renewed within a minute (here, before the old certificate expires).
        try fleet.startController()
        let returned = Date()
        try await fleet.wait("the agent to renew after the controller returned", timeout: 60) {
            let s = try fleet.agentStatus(id)
            return (s["renewals"] as? Int ?? 0) >= 1 && s["connected"] as? Bool == true
        }
        let renewedAfter = Date().timeIntervalSince(returned)
        #expect(renewedAfter < 60)
        #expect(samplePair(in: fleet.stateDirectory(id)).isSuccess)
        #expect(!fleet.agentLog(id).contains("certificate expired while offline"))
        print("controller-down: \(requests.count) requests while down, gaps \(gaps.map { String(format: "%.2f", $0) }), renewed \(String(format: "%.1f", renewedAfter)) s after return")
        passed = true
    }
}
