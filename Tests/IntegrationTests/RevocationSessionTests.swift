import Foundation
import Shared
import Testing
import TestSupport

/// Emergency revocation of a device that does not cooperate: a stolen
/// credential held open by an independent paho-mqtt client, which ignores
/// the revoke command. TLS checks the CRL only at the handshake; the
/// controller must cut the open session (dynamic-security plugin) and the
/// reconnect must fail on the CRL, while every other device carries on.
@Suite("Revocation cuts a live session over a real Mosquitto", .serialized)
struct RevocationSessionTests {
    @Test("a revoked credential's open session is cut at once, its next handshake fails, openssl agrees, the other device stays connected and renews")
    func revokeCutsLiveSession() async throws {
        let fleet = try Fleet(ttl: "20s")
        var passed = false
        var holder: ChildProcess?
        defer { holder?.terminate(); fleet.shutdown(keep: !passed) }
        for id in ["gw-victim", "gw-bystander"] {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try await fleet.wait("both agents to enroll and connect", timeout: 20) {
            try ["gw-victim", "gw-bystander"].allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }

        // 01 — the victim's credential is stolen; its agent goes away and the
        // thief holds a session open with it (same identity, so not both).
        let stolen = "\(fleet.directory)/stolen"
        try FileManager.default.createDirectory(atPath: stolen, withIntermediateDirectories: true)
        let generation = try resolvedGeneration(fleet.stateDirectory("gw-victim"))
        try FileManager.default.copyItem(atPath: "\(generation)/chain.pem", toPath: "\(stolen)/chain.pem")
        try FileManager.default.copyItem(atPath: "\(generation)/key.pem", toPath: "\(stolen)/key.pem")
        fleet.stopAgent("gw-victim")
        let holderLog = "\(fleet.directory)/holder.log"
        holder = try ChildProcess("/usr/bin/env", ["python3", Broker.repositoryRoot + "/Tests/IntegrationTests/python/mqtt_peer.py", "hold",
                                                   "--port", String(fleet.broker.operationalPort), "--ca", fleet.bundle,
                                                   "--cert", "\(stolen)/chain.pem", "--key", "\(stolen)/key.pem",
                                                   "--client-id", "gw-victim", "--wait", "30"], outputPath: holderLog)
        try await fleet.wait("the stolen credential's session to be up", timeout: 15) {
            ((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "").contains("\"event\": \"connected\"")
        }
        // Held for a while: the broker does not drop it on its own.
        try await Task.sleep(for: .seconds(2))
        #expect(holder?.isRunning == true, "the stolen session ended before the revocation: \((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "")")

        // 02 — revoke: the CRL, the reload, the command (ignored), the cut.
        let revokedAt = Date().timeIntervalSince1970
        let revoke = try fleet.ctlJSON(["revoke", "gw-victim", "--reason", "keyCompromise"])
        #expect(revoke["brokerReloaded"] as? Bool == true && revoke["sessionCut"] as? Bool == true, "\(revoke)")
        let enforcedIn = revoke["timeToRevokeMs"] as? Int ?? -1
        #expect(enforcedIn >= 0 && enforcedIn < 5000, "time to revoke: \(enforcedIn) ms")
        _ = holder?.wait(timeout: 10)
        let lines = ((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "").split(separator: "\n")
        let ended = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        #expect(ended["dropped"] as? Bool == true, "the stolen session survived the revocation: \(lines)")
        let droppedAfter = (ended["droppedAt"] as? Double ?? .infinity) - revokedAt
        #expect(droppedAfter < 5, "session dropped \(droppedAfter) s after the revoke call")

        // 03 — its next handshake fails, and openssl agrees with the broker.
        let again = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                    "--key", "\(stolen)/key.pem", "--client-id", "gw-victim"])
        #expect(again.json["connected"] as? Bool != true, "the broker accepted the revoked certificate again: \(again.json)")
        let crlCheck = try TestProcess.run("openssl", ["verify", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl, "\(stolen)/chain.pem"])
        #expect(!crlCheck.succeeded && (crlCheck.stdout + crlCheck.stderr).contains("certificate revoked"), "openssl: \(crlCheck.stdout) \(crlCheck.stderr)")

        // 04 — the bystander: untouched by the reload and the cut, renews and reconnects on its new certificate.
        let before = try fleet.agentStatus("gw-bystander")["renewals"] as? Int ?? 0
        try await fleet.wait("gw-bystander to renew after the revocation", timeout: 30) {
            let s = try fleet.agentStatus("gw-bystander")
            return (s["renewals"] as? Int ?? 0) > before && s["connected"] as? Bool == true
        }
        // The audit trail records the enforcement and its time.
        let audit = try fleet.ctl(["audit", "export"]).stdout
        #expect(audit.contains("device.revoke.enforced") && audit.contains("session_cut=true"), "audit: \(audit.suffix(600))")
        print("revocation: enforced in \(enforcedIn) ms, stolen session dropped \(String(format: "%.2f", droppedAfter)) s after the call")
        passed = true
    }
}
