import Foundation
import Shared
import Testing
import TestSupport

/// The walking skeleton end to end, as a numbered story: a real Mosquitto
/// with the deploy config, a real controller, real agents, an operator's
/// `lanyardctl`, and independent peers (openssl, paho-mqtt, PyJWT).
@Suite("End to end over a real Mosquitto", .serialized)
struct EndToEndTests {
    @Test("enroll, renew twice with a valid pair on disk throughout, per-device isolation, bad input ignored, revocation refused by the broker")
    func lifecycle() async throws {
        let fleet = try Fleet(ttl: "12s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let devices = ["gw-a", "gw-b", "mallory"]

        // 01 — enrollment: each agent makes its key, enrolls with its one-time token, connects with mTLS.
        for id in devices {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try await fleet.wait("every agent enrolled and connected", timeout: 30) {
            try devices.allSatisfy { let s = try fleet.agentStatus($0); return s["state"] as? String == "active" && s["connected"] as? Bool == true }
        }
        let verify = try TestProcess.run("openssl", ["verify", "-CAfile", fleet.bundle, "\(fleet.stateDirectory("gw-a"))/current/chain.pem"])
        #expect(verify.succeeded, "openssl verify of an enrolled certificate: \(verify.stdout) \(verify.stderr)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(fleet.stateDirectory("gw-a"))/current/key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(try fleet.ctlJSON(["device", "show", "gw-a"])["state"] as? String == "active")

        // 02 — two renewals; sampled every 100 ms, the pair on disk is always a matching, valid key and certificate.
        var serials = Set<String>()
        var problems: [String] = []
        let deadline = Date().addingTimeInterval(45)
        while Date() < deadline {
            switch samplePair(in: fleet.stateDirectory("gw-a")) {
            case .success(let serial): serials.insert(serial)
            case .failure(let problem): problems.append(problem.description)
            }
            if let renewals = try fleet.agentStatus("gw-a")["renewals"] as? Int, renewals >= 2, serials.count >= 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(problems.isEmpty, "no valid pair on disk at some moment: \(problems.prefix(5))")
        #expect(serials.count >= 3, "expected the enrolled certificate and two renewals, saw \(serials)")
        let shown = try fleet.ctlJSON(["device", "show", "gw-a"])
        #expect(((shown["certificates"] as? [Any])?.count ?? 0) >= 3)
        // A renewal has just made the agent reconnect on its new certificate: give it the moment that takes.
        try await fleet.wait("gw-a to be connected on its latest certificate", timeout: 10) {
            try fleet.agentStatus("gw-a")["connected"] as? Bool == true
        }

        // 03 — isolation: with its own valid certificate, mallory can neither write to nor read gw-a's topics.
        fleet.stopAgent("mallory")
        let malloryState = fleet.stateDirectory("mallory")
        let intrusion = try fleet.peer(["intrude", "--port", String(fleet.broker.operationalPort), "--cert", "\(malloryState)/current/chain.pem",
                                        "--key", "\(malloryState)/current/key.pem", "--client-id", "mallory", "--victim", "gw-a"])
        #expect(intrusion.json["connected"] as? Bool == true, "mallory's own certificate must connect: \(intrusion.result.stdout) \(intrusion.result.stderr)")
        #expect((intrusion.json["received"] as? [Any])?.isEmpty == true, "mallory read gw-a's topics: \(intrusion.json)")
        try await Task.sleep(for: .seconds(1))
        #expect(!fleet.agentLog("gw-a").contains("command refused"), "a forged publish reached gw-a's command topic")
        #expect(try fleet.ctlJSON(["device", "show", "gw-a"])["reportedState"] as? String != "hacked")
        #expect(!fleet.controllerLog().contains("renew refused device=gw-a"), "mallory's renewal request for gw-a reached the controller")

        // 04 — bad input: a malformed enrollment request gets a coded refusal; the controller keeps running.
        let junk = try TestProcess.run("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(fleet.broker.bootstrapPort), "--cafile", fleet.bundle,
                                                         "-i", "nobody", "-V", "mqttv5", "-q", "1", "-t", "lanyard/v1/enroll/nobody/req", "-m", "{not json"])
        #expect(junk.succeeded, "\(junk.stderr)")
        try await fleet.wait("the controller to refuse the malformed request", timeout: 10) {
            fleet.controllerLog().contains("enroll refused device=nobody code=bad_request")
        }
        #expect(try fleet.status()["brokerConnected"] as? Bool == true)

        // 04b — a revoke command signed by a device key (mallory's valid certificate), sent
        // under the controller's own identity, is refused by gw-a, which keeps its credential.
        let serialBefore = try fleet.agentStatus("gw-a")["serial"] as? String
        fleet.stopController()
        let forged = try fleet.peer(["forge", "--port", String(fleet.broker.operationalPort), "--cert", "\(fleet.pki)/controller.pem",
                                     "--key", "\(fleet.pki)/controller.key", "--victim", "gw-a", "--signer-key", "\(malloryState)/current/key.pem",
                                     "--signer-chain", "\(malloryState)/current/chain.pem", "--wait", "5"])
        let acks = forged.json["acks"] as? [[String: Any]] ?? []
        #expect(acks.contains { $0["outcome"] as? String == "refused" && $0["code"] as? String == "untrusted_signer" },
                "gw-a must refuse a command signed by a device key: \(forged.result.stdout) \(forged.result.stderr)")
        let afterForgery = try fleet.agentStatus("gw-a")
        #expect(afterForgery["state"] as? String != "revoked")
        #expect(FileManager.default.fileExists(atPath: "\(fleet.stateDirectory("gw-a"))/current/key.pem"))
        #expect(serialBefore != nil && fleet.agent("gw-a")?.isRunning == true)
        try fleet.startController()

        // 05 — revocation: the register, the CRL, the broker and the agent all agree.
        let stolen = "\(fleet.directory)/stolen"
        try FileManager.default.createDirectory(atPath: stolen, withIntermediateDirectories: true)
        try fleet.waitSync("gw-b to hold a credential", timeout: 20) { samplePair(in: fleet.stateDirectory("gw-b")).isSuccess }
        let gwb = try resolvedGeneration(fleet.stateDirectory("gw-b"))
        try FileManager.default.copyItem(atPath: "\(gwb)/chain.pem", toPath: "\(stolen)/chain.pem")
        try FileManager.default.copyItem(atPath: "\(gwb)/key.pem", toPath: "\(stolen)/key.pem")
        let before = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                     "--key", "\(stolen)/key.pem", "--client-id", "gw-b"])
        #expect(before.json["connected"] as? Bool == true,
                "the credential works before revocation: \(before.json)")

        let revoke = try fleet.ctl(["revoke", "gw-b", "--reason", "keyCompromise"])
        #expect(revoke.succeeded, "lanyardctl revoke: \(revoke.stdout) \(revoke.stderr)")
        try await fleet.wait("gw-b to report revoked and erase its keys", timeout: 15) {
            try fleet.agentStatus("gw-b")["state"] as? String == "revoked"
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fleet.stateDirectory("gw-b")).filter { $0.hasPrefix("gen-") || $0 == "current" }
        #expect(leftovers.isEmpty, "credential files left after revocation: \(leftovers)")
        #expect(fleet.agent("gw-b")?.isRunning == true, "a revoked agent stays up, in state revoked")

        let crlCheck = try TestProcess.run("openssl", ["verify", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl, "\(stolen)/chain.pem"])
        #expect(!crlCheck.succeeded && (crlCheck.stdout + crlCheck.stderr).contains("certificate revoked"), "openssl: \(crlCheck.stdout) \(crlCheck.stderr)")
        let after = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                    "--key", "\(stolen)/key.pem", "--client-id", "gw-b"])
        #expect(after.json["connected"] as? Bool != true, "the broker accepted a revoked certificate: \(after.json)")
        let shownRevoked = try fleet.ctlJSON(["device", "show", "gw-b"])
        #expect(shownRevoked["state"] as? String == "revoked")
        // The agent's own report got through before its session was cut.
        #expect(shownRevoked["reportedState"] as? String == "revoked", "\(shownRevoked)")

        // Everyone else is unaffected by the broker reload: gw-a renews and reconnects again.
        let renewalsBefore = try fleet.agentStatus("gw-a")["renewals"] as? Int ?? 0
        try await fleet.wait("gw-a to renew again after the reload", timeout: 30) {
            let s = try fleet.agentStatus("gw-a")
            return (s["renewals"] as? Int ?? 0) > renewalsBefore && s["connected"] as? Bool == true
        }
        #expect(fleet.controller?.isRunning == true && fleet.agent("gw-a")?.isRunning == true)
        passed = true
    }
}

/// The generation directory `current` points at.
func resolvedGeneration(_ stateDirectory: String) throws -> String {
    let target = try FileManager.default.destinationOfSymbolicLink(atPath: "\(stateDirectory)/current")
    return "\(stateDirectory)/\(target)"
}

/// Reads the current key and certificate (through one resolution of the
/// symlink) and checks they match and are valid now. Success carries the serial.
func samplePair(in stateDirectory: String) -> Result<String, SampleProblem> {
    do {
        let dir = try resolvedGeneration(stateDirectory)
        let key = try PrivateKey(pem: String(contentsOfFile: "\(dir)/key.pem", encoding: .utf8))
        let leaf = try Certificate(pem: String(contentsOfFile: "\(dir)/chain.pem", encoding: .utf8))
        guard key.publicKey == leaf.publicKey else { return .failure(SampleProblem("key does not match certificate in \(dir)")) }
        let now = Date()
        guard leaf.notBefore <= now, now < leaf.notAfter else { return .failure(SampleProblem("certificate \(leaf.serialHex) not valid now")) }
        return .success(leaf.serialHex)
    } catch {
        return .failure(SampleProblem("\(error)"))
    }
}

struct SampleProblem: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
