import Foundation
import Shared
import Testing
import TestSupport

/// The agent's lifecycle features end to end (real broker, controller and
/// agent processes): hooks, credential fallback when the broker refuses a
/// new certificate, and the `retire` and `bundle` commands.
@Suite("Agent lifecycle over a real Mosquitto", .serialized)
struct AgentLifecycleTests {
    /// Parses `KEY=VALUE` lines.
    func environment(in file: String) -> [String: String] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            result[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return result
    }

    @Test("on_renew runs after enrollment and each renewal with the credential's environment; a failing or hanging hook is reported and changes nothing")
    func hooks() async throws {
        let fleet = try Fleet(ttl: "12s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let hookDir = "\(fleet.directory)/hooks"
        try FileManager.default.createDirectory(atPath: hookDir, withIntermediateDirectories: true)

        // 01 — three devices: one hook records its environment, one fails, one hangs past its timeout.
        try fleet.register("gw-hook")
        try fleet.addHooks("gw-hook", onRenew: "env > '\(hookDir)/renew-'\"$LANYARD_SERIAL\".env")
        try fleet.register("gw-fail")
        try fleet.addHooks("gw-fail", onRenew: "echo failing on purpose >&2; exit 7")
        try fleet.register("gw-hang")
        try fleet.addHooks("gw-hang", onRenew: "sleep 60", timeout: "1s")
        for id in ["gw-hook", "gw-fail", "gw-hang"] { try fleet.startAgent(id) }

        // 02 — a renewal: the hook saw the installed certificate's serial, notAfter and paths.
        try await fleet.wait("every agent renewed once", timeout: 40) {
            try ["gw-hook", "gw-fail", "gw-hang"].allSatisfy { (try fleet.agentStatus($0)["renewals"] as? Int ?? 0) >= 1 }
        }
        let state = fleet.stateDirectory("gw-hook")
        var serial = ""
        try await fleet.wait("the renew hook of the current certificate to write its environment", timeout: 10) {
            guard case .success(let s) = samplePair(in: state) else { return false }
            serial = s
            return environment(in: "\(hookDir)/renew-\(s).env")["LANYARD_SERIAL"] == s
        }
        let env = environment(in: "\(hookDir)/renew-\(serial).env")
        let leaf = try Certificate(pem: String(contentsOfFile: "\(state)/current/chain.pem", encoding: .utf8))
        #expect(env["LANYARD_EVENT"] == "renew")
        #expect(env["LANYARD_DEVICE_ID"] == "gw-hook")
        #expect(env["LANYARD_NOT_AFTER"] == String(Int64(leaf.notAfter.timeIntervalSince1970)))
        #expect(env["LANYARD_KEY_PATH"] == "\(state)/current/key.pem")
        #expect(env["LANYARD_CHAIN_PATH"] == "\(state)/current/chain.pem")
        #expect(env["LANYARD_CERT_PATH"] == "\(state)/current/cert.pem")
        #expect(try Certificate(pem: String(contentsOfFile: try #require(env["LANYARD_CERT_PATH"]), encoding: .utf8)) == leaf)
        #expect(env["PATH"] != nil)
        #expect(env["HOME"] == nil, "the agent's own environment leaked into the hook")
        let hookFiles = try FileManager.default.contentsOfDirectory(atPath: hookDir).filter { $0.hasPrefix("renew-") }
        #expect(hookFiles.count >= 2, "enrollment and a renewal each ran the hook: \(hookFiles)")
        #expect(try fleet.agentStatus("gw-hook")["hookFailures"] as? Int == 0)

        // 03 — the failing and the hanging hook: counted, logged with their status, credential kept and used.
        for (id, why) in [("gw-fail", "exit status 7"), ("gw-hang", "timed out")] {
            try await fleet.wait("\(id) to report its hook failures", timeout: 10) {
                (try fleet.agentStatus(id)["hookFailures"] as? Int ?? 0) >= 2
            }
            #expect(fleet.agentLog(id).contains("hook failed"), "\(id) log")
            #expect(fleet.agentLog(id).contains(why), "\(id) log lacks \(why)")
            let status = try fleet.agentStatus(id)
            #expect(status["state"] as? String != "revoked" && status["state"] as? String != "expired")
            let pair = samplePair(in: fleet.stateDirectory(id))
            #expect(pair.isSuccess, "\(id) has no valid pair after a failed hook: \(pair)")
            if case .success(let s) = pair { #expect(status["serial"] as? String == s) }
            #expect(fleet.agent(id)?.isRunning == true)
        }
        try await fleet.wait("gw-fail to show the hook in lastError", timeout: 15) {
            (try fleet.agentStatus("gw-fail")["lastError"] as? String ?? "").contains("on_renew hook failed: exit status 7")
        }
        try await fleet.wait("the agents with failing hooks to renew again and stay connected", timeout: 30) {
            try ["gw-fail", "gw-hang"].allSatisfy {
                let s = try fleet.agentStatus($0)
                return (s["renewals"] as? Int ?? 0) >= 2 && s["connected"] as? Bool == true
            }
        }
        passed = true
    }

    @Test("a new certificate the broker refuses: the agent falls back to the previous generation and stays connected")
    func fallback() async throws {
        let fleet = try Fleet(ttl: "45s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let id = "gw-fallback"
        try fleet.register(id)
        let state = fleet.stateDirectory(id)

        // 01 — enroll, then die right after the first renewal's swap: the new
        // generation is current, the previous one still on disk, no broker has seen the new one.
        try fleet.startAgent(id, environment: ["LANYARD_TEST_CRASH_AT": "after-swap"])
        try await fleet.wait("the agent to die at the swap of its first renewal", timeout: 60) { fleet.agent(id)?.isRunning == false }
        let newGeneration = try resolvedGeneration(state)
        let generations = try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasPrefix("gen-") }.sorted()
        #expect(generations.count == 2, "\(generations)")
        let previousName = try #require(generations.first { "\(state)/\($0)" != newGeneration })
        let newSerial = try Certificate(pem: String(contentsOfFile: "\(newGeneration)/chain.pem", encoding: .utf8)).serialHex
        let previousSerial = try Certificate(pem: String(contentsOfFile: "\(state)/\(previousName)/chain.pem", encoding: .utf8)).serialHex

        // 02 — the broker refuses only the new certificate.
        try fleet.refuseAtBroker(serials: [newSerial])
        let refused = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(newGeneration)/chain.pem",
                                      "--key", "\(newGeneration)/key.pem", "--client-id", id])
        #expect(refused.json["connected"] as? Bool != true, "the broker still accepts the new certificate: \(refused.json)")

        // 03 — restarted, the agent tries the new certificate, is refused, and goes back to the previous one.
        try fleet.startAgent(id)
        try await fleet.wait("the agent to fall back", timeout: 20) { fleet.agentLog(id).contains("fell back to the previous generation") }
        try await fleet.wait("a connection on the previous certificate", timeout: 15) {
            let log = fleet.agentLog(id)
            guard let fell = log.range(of: "fell back to the previous generation") else { return false }
            return log[fell.upperBound...].contains("connected to the broker serial=\(previousSerial)")
        }
        #expect(fleet.agentLog(id).contains("refused=gen-"), "the log names the refused generation")
        #expect(!FileManager.default.fileExists(atPath: newGeneration), "the refused generation is erased")
        let status = try fleet.agentStatus(id)
        let reported = (status["lastError"] as? String ?? "")
        #expect(reported.isEmpty || reported.contains("fell back to \(previousName)") || (status["renewals"] as? Int ?? 0) >= 2,
                "status: \(status)")

        // 04 — it stays connected and renews again to a certificate the broker accepts.
        try await fleet.wait("a renewal the broker accepts", timeout: 30) {
            let s = try fleet.agentStatus(id)
            guard s["connected"] as? Bool == true, let serial = s["serial"] as? String else { return false }
            return serial != newSerial && serial != previousSerial
        }
        #expect(fleet.agent(id)?.isRunning == true)
        passed = true
    }

    @Test("bundle adds an anchor (a command from the new CA then verifies) and a bad bundle changes nothing; retire erases everything, exits 4 and stays retired")
    func commands() async throws {
        let fleet = try Fleet(ttl: "10m")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        // gw-ret keeps its token in the state directory, so retire must erase it.
        try fleet.register("gw-ret")
        let retState = fleet.stateDirectory("gw-ret")
        try FileManager.default.createDirectory(atPath: retState, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.moveItem(atPath: "\(fleet.agentDirectory("gw-ret"))/token", toPath: "\(retState)/token")
        try fleet.setAgentOption("gw-ret", section: "agent", "token_file", "state/token")
        try fleet.register("gw-bun")
        for id in ["gw-ret", "gw-bun"] { try fleet.startAgent(id) }
        try await fleet.wait("both agents connected", timeout: 30) {
            try ["gw-ret", "gw-bun"].allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }

        // 01 — before any bundle, a command signed under another CA is refused.
        let foreign = try fleet.makeForeignCommandSigner()
        let early = try fleet.sendCommand("gw-bun", "ping", seq: 10, signerKey: foreign.key, signerChain: foreign.chain)
        #expect(early?.outcome == "refused" && early?.code == "untrusted_signer", "\(early?.raw ?? "no ack")")

        // 02 — a bad bundle (a device certificate, not a CA) is refused with nothing written.
        let deviceLeaf = try String(contentsOfFile: "\(fleet.stateDirectory("gw-bun"))/current/chain.pem", encoding: .utf8)
        let bad = try fleet.sendCommand("gw-bun", "bundle", args: ["bundle": deviceLeaf], seq: 11)
        #expect(bad?.outcome == "refused" && bad?.code == "bad_bundle", "\(bad?.raw ?? "no ack")")
        let garbage = try fleet.sendCommand("gw-bun", "bundle", args: ["bundle": "not a pem"], seq: 12)
        #expect(garbage?.outcome == "refused" && garbage?.code == "bad_bundle", "\(garbage?.raw ?? "no ack")")
        let installedPath = "\(fleet.stateDirectory("gw-bun"))/bundle.pem"
        #expect(!FileManager.default.fileExists(atPath: installedPath))

        // 03 — the new anchor is installed next to the old ones (0600) and a command from the new CA verifies.
        let rootPEM = try String(contentsOfFile: foreign.root, encoding: .utf8)
        let good = try fleet.sendCommand("gw-bun", "bundle", args: ["bundle": rootPEM], seq: 13)
        #expect(good?.outcome == "done", "\(good?.raw ?? "no ack")")
        let installed = try Certificate.chain(fromPEM: String(contentsOfFile: installedPath, encoding: .utf8))
        let original = try Certificate.chain(fromPEM: String(contentsOfFile: fleet.bundle, encoding: .utf8))
        #expect(Set(installed) == Set(original + [try Certificate(pem: rootPEM)]))
        #expect(try FileManager.default.attributesOfItem(atPath: installedPath)[.posixPermissions] as? Int == 0o600)
        let late = try fleet.sendCommand("gw-bun", "ping", seq: 14, signerKey: foreign.key, signerChain: foreign.chain)
        #expect(late?.outcome == "done", "\(late?.raw ?? "no ack")")
        // The old anchors still work (union), and after a restart the agent still uses the bundle, broker included.
        #expect(try fleet.sendCommand("gw-bun", "ping", seq: 15)?.outcome == "done")
        fleet.stopAgent("gw-bun")
        try fleet.startAgent("gw-bun")
        try await fleet.wait("gw-bun back on the broker with the installed bundle", timeout: 20) {
            try fleet.agentStatus("gw-bun")["connected"] as? Bool == true
        }
        #expect(try fleet.sendCommand("gw-bun", "ping", seq: 16, signerKey: foreign.key, signerChain: foreign.chain)?.outcome == "done")

        // 04 — retire: ack first, then everything erased, exit 4.
        let retired = try fleet.sendCommand("gw-ret", "retire", seq: 1)
        #expect(retired?.outcome == "done", "\(retired?.raw ?? "no ack")")
        let process = try #require(fleet.agent("gw-ret"))
        try await fleet.wait("gw-ret to exit", timeout: 10) { !process.isRunning }
        #expect(process.terminationStatus == 4)
        let left = try FileManager.default.contentsOfDirectory(atPath: retState)
        #expect(left == ["retired"], "left in the state directory: \(left)")
        let status = try TestProcess.run("\(fleet.bin)/lanyard-agent", ["status", "--json", "--config", "\(fleet.agentDirectory("gw-ret"))/agent.conf"])
        #expect(status.exitCode == 2)
        #expect(status.stdout.contains("\"state\":\"retired\""), "\(status.stdout)")

        // 05 — a restart stays retired: exit 4 at once, nothing enrolled or written.
        try fleet.startAgent("gw-ret")
        let again = try #require(fleet.agent("gw-ret"))
        try await fleet.wait("the restarted agent to exit", timeout: 10) { !again.isRunning }
        #expect(again.terminationStatus == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: retState) == ["retired"])
        #expect(fleet.agent("gw-bun")?.isRunning == true)
        passed = true
    }
}
