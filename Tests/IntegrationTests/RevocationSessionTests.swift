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
        if let holder { _ = try await offPool { holder.wait(timeout: 10) } }
        let lines = ((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "").split(separator: "\n")
        let ended = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        #expect(ended["dropped"] as? Bool == true, "the stolen session survived the revocation: \(lines)")
        let droppedAfter = (ended["droppedAt"] as? Double ?? .infinity) - revokedAt
        #expect(droppedAfter < 5, "session dropped \(droppedAfter) s after the revoke call")
        // The cut leaves no client behind in the plugin's state (the broker rewrites that whole file on every change).
        let dynsec = (try? String(contentsOfFile: "\(fleet.broker.directory)/dynamic-security.json", encoding: .utf8)) ?? "missing"
        #expect(dynsec != "missing" && !dynsec.contains("gw-victim"), "dynamic-security.json: \(dynsec.prefix(2000))")

        // 03 — its next handshake fails, and openssl agrees with the broker.
        let again = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                    "--key", "\(stolen)/key.pem", "--client-id", "gw-victim"])
        #expect(again.json["connected"] as? Bool != true, "the broker accepted the revoked certificate again: \(again.json)")
        // -no_check_time: a 20 s certificate may have expired by now on a loaded machine; the question is its revocation.
        let crlCheck = try TestProcess.run("openssl", ["verify", "-no_check_time", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl,
                                                       "\(stolen)/chain.pem"])
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

    @Test("revoke by selector: every matching device revoked in one CRL and reload, sessions cut, p50/p99 reported; a dry run changes nothing; others untouched")
    func revokeBySelector() async throws {
        let fleet = try Fleet(ttl: "30s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let line2 = ["gw-l2-a", "gw-l2-b"], other = "gw-l1"
        for id in line2 + [other] {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try #require(try fleet.ctl(["vendor", "set", "acme", "--clauses", "issuance,rotation,revocation"]).succeeded)
        for (id, site) in [(line2[0], "line-2"), (line2[1], "line-2"), (other, "line-1")] {
            let updated = try fleet.ctl(["device", "update", id, "--site", site, "--vendor", "acme"])
            try #require(updated.succeeded, "device update \(id): \(updated.stderr)")
        }
        try await fleet.wait("three agents to enroll and connect", timeout: 25) {
            try (line2 + [other]).allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }
        let crlBefore = try fleet.status()["crlNumber"] as? Int ?? -1

        // 01 — a dry run lists the two devices and changes nothing.
        let dry = try fleet.ctlJSON(["revoke", "--selector", "vendor=acme,site=line-2", "--reason", "keyCompromise", "--dry-run"])
        #expect(Set(dry["matched"] as? [String] ?? []) == Set(line2), "\(dry)")
        #expect(try fleet.ctlJSON(["device", "show", line2[0]])["state"] as? String == "active")
        // A malformed selector is refused with a usage hint.
        let bad = try fleet.ctl(["revoke", "--selector", "colour=red", "--reason", "keyCompromise"])
        #expect(bad.exitCode == 1 && bad.stderr.contains("selector must be"), "\(bad.stderr)")

        // 02 — the real thing: both revoked, one CRL, sessions cut, time to revoke reported.
        let result = try fleet.ctlJSON(["revoke", "--selector", "vendor=acme,site=line-2", "--reason", "keyCompromise"])
        let results = result["results"] as? [[String: Any]] ?? []
        #expect(Set(results.compactMap { $0["id"] as? String }) == Set(line2), "\(result)")
        #expect(results.allSatisfy { $0["sessionCut"] as? Bool == true && $0["commandSent"] as? Bool == true }, "\(results)")
        #expect(result["brokerReloaded"] as? Bool == true)
        #expect((result["crlNumber"] as? Int ?? 0) == crlBefore + 1, "one CRL for the whole selector: \(result["crlNumber"] ?? "-") after #\(crlBefore)")
        let p99 = result["timeToRevokeP99Ms"] as? Int ?? -1
        #expect(p99 >= 0 && p99 < 5000, "p99 \(p99) ms")
        for id in line2 {
            try await fleet.wait("\(id) to report revoked and erase its keys", timeout: 15) { try fleet.agentStatus(id)["state"] as? String == "revoked" }
        }
        // The other device of the same vendor, at another site: untouched, still renewing.
        let before = try fleet.agentStatus(other)["renewals"] as? Int ?? 0
        try await fleet.wait("\(other) to renew after the bulk revocation", timeout: 60) {
            let s = try fleet.agentStatus(other)
            return (s["renewals"] as? Int ?? 0) > before && s["connected"] as? Bool == true
        }
        #expect(try fleet.ctlJSON(["device", "show", other])["state"] as? String == "active")
        // Again: nothing left to revoke, both listed as skipped.
        let again = try fleet.ctlJSON(["revoke", "--selector", "site=line-2", "--reason", "keyCompromise"])
        #expect((again["results"] as? [Any])?.isEmpty == true && Set(again["skipped"] as? [String] ?? []) == Set(line2), "\(again)")
        print("bulk revocation of \(results.count): p50 \(result["timeToRevokeP50Ms"] ?? "-") ms, p99 \(p99) ms")
        passed = true
    }
}
