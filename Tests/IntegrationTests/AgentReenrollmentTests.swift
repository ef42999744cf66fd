import Foundation
import Shared
import Testing
import TestSupport

/// Offline past notAfter with a class that allows re-enrollment: the agent
/// proves it holds its expired key over the bootstrap listener and comes
/// back with a new credential, whether it was running all along or started
/// only after the expiry. Real broker, controller and agents.
@Suite("Agent re-enrollment after expiry over a real Mosquitto", .serialized)
struct AgentReenrollmentTests {
    @Test("running and stopped agents offline past notAfter re-enroll when the class allows it, with a new key, and connect again")
    func reenrollAfterExpiry() async throws {
        let fleet = try Fleet(ttl: "10s")
        var passed = false
        var broker: Broker?
        defer { broker?.stop(); fleet.shutdown(keep: !passed) }
        // The class allows it (the sample config says false): a new, audited policy version.
        try fleet.ctl(["class", "set", "default", "--reenroll-after-expiry", "yes", "--reenroll-window", "1h", "--reason", "gateways at remote sites"])

        let running = "gw-outage", sleeper = "gw-sleeper"
        for id in [running, sleeper] {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try await fleet.wait("both agents to enroll and connect", timeout: 20) {
            try [running, sleeper].allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }
        var before: [String: (serial: String, notAfter: Int)] = [:]
        for id in [running, sleeper] {
            let s = try fleet.agentStatus(id)
            before[id] = (s["serial"] as? String ?? "", s["notAfter"] as? Int ?? 0)
        }

        // 01 — power cut at the site: the broker and controller go, gw-sleeper's
        // agent is stopped; both certificates expire.
        fleet.stopAgent(sleeper)
        fleet.stopController()
        fleet.broker.stop()
        let latest = before.values.map(\.notAfter).max() ?? 0
        try await Task.sleep(for: .seconds(max(0, Double(latest) - Date().timeIntervalSince1970) + 2))

        // 02 — the site comes back: both re-enroll (the running one after the
        // broker refuses its expired certificate, the other at start-up).
        broker = try Broker.start(pkiDirectory: fleet.pki, crlFile: fleet.crl, operationalPort: fleet.broker.operationalPort,
                                  bootstrapPort: fleet.broker.bootstrapPort)
        try fleet.startController()
        try fleet.startAgent(sleeper)
        try await fleet.wait("both agents to re-enroll and connect", timeout: 60) {
            try [running, sleeper].allSatisfy { id in
                let s = try fleet.agentStatus(id)
                return s["connected"] as? Bool == true && s["state"] as? String == "active" && s["serial"] as? String != before[id]?.serial
            }
        }
        for id in [running, sleeper] {
            let s = try fleet.agentStatus(id)
            let pair = samplePair(in: fleet.stateDirectory(id))
            #expect(pair.isSuccess, "\(id): \(pair)")
            #expect((s["notAfter"] as? Int ?? 0) > Int(Date().timeIntervalSince1970), "\(id): \(s)")
            #expect(fleet.agentLog(id).contains("re-enrolled after expiry"), "\(id) did not log its re-enrollment")
            // The new key is not the expired one.
            let current = try String(contentsOfFile: "\(fleet.stateDirectory(id))/current/key.pem", encoding: .utf8)
            let leaf = try Certificate(pem: String(contentsOfFile: "\(fleet.stateDirectory(id))/current/chain.pem", encoding: .utf8))
            #expect(try PrivateKey(pem: current).publicKey == leaf.publicKey)
            #expect(leaf.serialHex != before[id]?.serial)
        }
        // The register agrees, and audited each re-enrollment with the expired serial.
        let audit = try fleet.ctl(["audit", "export"]).stdout
        for id in [running, sleeper] {
            let entries = audit.split(separator: "\n").filter { $0.contains("\"reenroll\"") && $0.contains("\"\(id)\"") }
            #expect(entries.count == 1, "\(id): \(entries)")
            #expect(entries.first?.contains("previous=\(before[id]?.serial ?? "?")") == true)
            let shown = try fleet.ctlJSON(["device", "show", id])
            #expect(shown["serial"] as? String == (try fleet.agentStatus(id)["serial"] as? String))
        }
        passed = true
    }
}
