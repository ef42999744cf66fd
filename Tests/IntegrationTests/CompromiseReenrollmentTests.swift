import Foundation
import Shared
import Testing
import TestSupport

/// `device.compromised`, then re-enrollment where the class allows it: the
/// device is revoked at once (its agent erases the keys), approved again
/// with a new one-time token, and its agent — given the token and restarted —
/// enrolls with a new key. The stolen credential stays refused.
@Suite("Re-enrollment after a compromise over a real Mosquitto", .serialized)
struct CompromiseReenrollmentTests {
    @Test("refused by default; with reapprove_after_revocation the event hands out a new token and the restarted agent enrolls with a new key")
    func compromiseThenReenroll() async throws {
        let fleet = try Fleet(ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        for id in ["gw-neg", "gw-cmp"] {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try await fleet.wait("both agents to connect", timeout: 30) {
            try ["gw-neg", "gw-cmp"].allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }

        // 01 — the class does not allow it (the default): revoked, no new token, and approve is refused with the way out.
        let refused = try fleet.ctlJSON(["event", "device.compromised", "--device", "gw-neg", "--reason", "test: default class"])
        #expect(refused["action"] as? String == "revoke" && refused["reapprovals"] == nil, "\(refused)")
        let approve = try fleet.ctl(["device", "approve", "gw-neg"])
        #expect(approve.exitCode == 1 && approve.stderr.contains("invalid_transition") && approve.stderr.contains("reapprove_after_revocation"),
                "\(approve.stderr)")

        // 02 — the identity team allows it for the class (a new policy version, audited).
        let policy = try fleet.ctl(["class", "set", "default", "--reapprove-after-revocation", "yes", "--reason", "devices can be re-provisioned on site"])
        #expect(policy.succeeded, "\(policy.stderr)")

        // 03 — the key leaks: the event revokes at once and approves the device again with a new token.
        let oldGeneration = try resolvedGeneration(fleet.stateDirectory("gw-cmp"))
        let stolen = "\(fleet.directory)/stolen"
        try FileManager.default.createDirectory(atPath: stolen, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(oldGeneration)/chain.pem", toPath: "\(stolen)/chain.pem")
        try FileManager.default.copyItem(atPath: "\(oldGeneration)/key.pem", toPath: "\(stolen)/key.pem")
        let oldKey = try PrivateKey(pem: String(contentsOfFile: "\(stolen)/key.pem", encoding: .utf8))
        let event = try fleet.ctlJSON(["event", "device.compromised", "--device", "gw-cmp", "--reason", "key found on a forum", "--ref", "INC-4711"])
        let reapprovals = event["reapprovals"] as? [[String: Any]] ?? []
        let token = try #require(reapprovals.first?["token"] as? String, "\(event)")
        #expect(reapprovals.count == 1 && reapprovals.first?["id"] as? String == "gw-cmp")
        try await fleet.wait("gw-cmp's agent to erase its keys", timeout: 20) { try fleet.agentStatus("gw-cmp")["state"] as? String == "revoked" }
        #expect(try fleet.ctlJSON(["device", "show", "gw-cmp"])["state"] as? String == "approved")

        // 04 — restarted without a new token, the agent stays revoked.
        fleet.stopAgent("gw-cmp")
        try fleet.startAgent("gw-cmp")
        try await Task.sleep(for: .seconds(2))
        #expect(try fleet.agentStatus("gw-cmp")["state"] as? String == "revoked")

        // 05 — the token provisioned out of band, the agent restarted: a new enrollment with a new key.
        fleet.stopAgent("gw-cmp")
        try token.write(toFile: "\(fleet.agentDirectory("gw-cmp"))/token", atomically: true, encoding: .utf8)
        try fleet.startAgent("gw-cmp")
        try await fleet.wait("gw-cmp to enroll again and connect", timeout: 30) {
            let s = try fleet.agentStatus("gw-cmp")
            return s["connected"] as? Bool == true && s["state"] as? String == "active"
        }
        let newGeneration = try resolvedGeneration(fleet.stateDirectory("gw-cmp"))
        let newKey = try PrivateKey(pem: String(contentsOfFile: "\(newGeneration)/key.pem", encoding: .utf8))
        #expect(newKey.publicKey != oldKey.publicKey, "re-enrolled with the compromised key")
        #expect(try fleet.ctlJSON(["device", "show", "gw-cmp"])["state"] as? String == "active")

        // 06 — the stolen credential stays refused; the old certificate is revoked in the CRL openssl reads.
        let attempt = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                      "--key", "\(stolen)/key.pem", "--client-id", "gw-cmp"])
        #expect(attempt.json["connected"] as? Bool != true, "the broker accepts the compromised credential: \(attempt.json)")
        let crlCheck = try TestProcess.run("/usr/bin/openssl", ["verify", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl,
                                                                "-untrusted", "\(stolen)/chain.pem", "\(stolen)/chain.pem"])
        #expect((crlCheck.stdout + crlCheck.stderr).contains("certificate revoked"), "\(crlCheck.stdout) \(crlCheck.stderr)")
        passed = true
    }
}
