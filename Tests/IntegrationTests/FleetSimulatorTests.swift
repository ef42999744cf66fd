import Foundation
import Shared
import Testing
import TestSupport

/// The fleet simulator itself, against a real Mosquitto and controller: if
/// it miscounts, skips a check or cannot follow a command, the benchmark
/// figures it prints would be wrong, so it is tested like a product.
@Suite("Fleet simulator against a real broker and controller", .serialized)
struct FleetSimulatorTests {
    @Test("20 simulated devices enroll, renew once, publish state; one follows the signed revoke and the broker refuses it")
    func smallFleet() async throws {
        let fleet = try Fleet(ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let devices = 20

        // 01 — run the simulator: enrollment, one renewal round, one revocation.
        let run = try await offPool { try TestProcess.run("\(fleet.bin)/lanyard-fleetsim", [
            "run", "--devices", String(devices), "--prefix", "fs", "--bundle", fleet.bundle, "--socket", fleet.socket,
            "--port", String(fleet.broker.operationalPort), "--bootstrap-port", String(fleet.broker.bootstrapPort),
            "--enroll-concurrency", "8", "--rounds", "4", "--revoke", "1", "--broker-pid", String(fleet.broker.pid),
            "--phase-timeout", "20", "--quiet", "--json", "-",
        ], timeout: 60) }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
                                   "no JSON summary: \(run.stdout) \(run.stderr)")
        #expect(run.exitCode == 0, "fleetsim exit \(run.exitCode): \(run.stderr)")

        // 02 — what the simulator says it did.
        let counters = summary["counters"] as? [String: Int] ?? [:]
        #expect(counters["enrolled"] == devices)
        #expect(counters["renewed"] == devices)
        #expect(counters["failedDevices"] == 0)
        #expect(counters["revocationsFollowed"] == 1)
        #expect(counters["commandsRefused"] == 0)
        let phases = summary["phases"] as? [[String: Any]] ?? []
        #expect(phases.map { $0["name"] as? String } == ["enroll", "renew-1"])
        #expect(phases.allSatisfy { $0["certificates"] as? Int == devices && $0["complete"] as? Bool == true && $0["p99Ms"] is Double })
        let register = summary["register"] as? [String: Any] ?? [:]
        #expect(register["certificatesReceived"] as? Int == 2 * devices)
        #expect(register["matches"] as? Bool == true)
        let revocation = (summary["revocations"] as? [[String: Any]])?.first ?? [:]
        #expect(revocation["device"] as? String == "fs-0000000")
        #expect(revocation["commandVerifiedSeconds"] is Double, "the device verified the signed revoke command")
        #expect(revocation["brokerRefusedSeconds"] is Double, "the broker refused the revoked certificate")

        // 03 — what the controller saw, independently of the simulator's own counts.
        let list = try fleet.ctlJSON(["device", "list"])
        let views = (list["devices"] as? [[String: Any]] ?? []).filter { ($0["id"] as? String)?.hasPrefix("fs-") == true }
        #expect(views.count == devices)
        let revoked = views.first { $0["id"] as? String == "fs-0000000" }
        #expect(revoked?["state"] as? String == "revoked")
        #expect(revoked?["reportedState"] as? String == "revoked", "the device reported its revocation on its state topic")
        let active = views.filter { $0["id"] as? String != "fs-0000000" }
        #expect(active.allSatisfy { $0["state"] as? String == "active" && $0["reportedState"] as? String == "active" })
        let shown = try fleet.ctlJSON(["device", "show", "fs-0000005"])
        let certificates = shown["certificates"] as? [[String: Any]] ?? []
        #expect(certificates.compactMap { $0["kind"] as? String }.sorted() == ["enroll", "renew"], "one enrollment and one renewal in the register")
        #expect(Set(certificates.compactMap { $0["keyFingerprint"] as? String }).count == 2, "the renewal used a new key")
        passed = true
    }

    @Test("mode B: 30 devices multiplexed over 3 connections on the benchmark-only listener enroll, renew and follow a revoke")
    func multiplexedFleet() async throws {
        let fleet = try Fleet(ttl: "1h", benchListener: true)
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let devices = 30
        let benchPort = try #require(fleet.broker.benchPort)

        let run = try await offPool { try TestProcess.run("\(fleet.bin)/lanyard-fleetsim", [
            "run", "--devices", String(devices), "--prefix", "mx", "--bundle", fleet.bundle, "--socket", fleet.socket,
            "--port", String(fleet.broker.operationalPort), "--bootstrap-port", String(fleet.broker.bootstrapPort),
            "--multiplex", "3", "--mux-port", String(benchPort), "--enroll-concurrency", "8", "--rounds", "8", "--revoke", "1",
            "--phase-timeout", "20", "--quiet", "--json", "-",
        ], timeout: 60) }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
                                   "no JSON summary: \(run.stdout) \(run.stderr)")
        #expect(run.exitCode == 0, "fleetsim exit \(run.exitCode): \(run.stderr)")
        #expect(summary["mode"] as? String == "3 connections")
        let counters = summary["counters"] as? [String: Int] ?? [:]
        #expect(counters["enrolled"] == devices)
        #expect(counters["renewed"] == devices)
        #expect(counters["revocationsFollowed"] == 1)
        #expect((summary["register"] as? [String: Any])?["matches"] as? Bool == true)
        let revocation = (summary["revocations"] as? [[String: Any]])?.first ?? [:]
        #expect(revocation["commandVerifiedSeconds"] is Double)
        #expect(revocation["brokerRefusedSeconds"] is Double, "the revoked certificate is refused on the operational listener")

        // The controller's register, independently: every device enrolled and renewed, the revoked one reported it.
        let views = (try fleet.ctlJSON(["device", "list"])["devices"] as? [[String: Any]] ?? []).filter { ($0["id"] as? String)?.hasPrefix("mx-") == true }
        #expect(views.count == devices)
        #expect(views.filter { $0["state"] as? String == "active" }.count == devices - 1)
        let revoked = views.first { $0["id"] as? String == "mx-0000000" }
        #expect(revoked?["state"] as? String == "revoked")
        #expect(revoked?["reportedState"] as? String == "revoked")
        let shown = try fleet.ctlJSON(["device", "show", "mx-0000017"])
        #expect((shown["certificates"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }.sorted() == ["enroll", "renew"])
        passed = true
    }

    @Test("a signed rotate command (the controller cannot send one yet: forged with the real command signer) makes a simulated device renew")
    func rotateCommand() async throws {
        let fleet = try Fleet(ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let json = "\(fleet.directory)/fleetsim.json"
        let sim = try ChildProcess("\(fleet.bin)/lanyard-fleetsim", [
            "run", "--devices", "3", "--prefix", "rt", "--bundle", fleet.bundle, "--socket", fleet.socket,
            "--port", String(fleet.broker.operationalPort), "--bootstrap-port", String(fleet.broker.bootstrapPort),
            "--rounds", "none", "--hold", "20", "--request-timeout", "2", "--quiet", "--json", json,
        ], outputPath: "\(fleet.directory)/fleetsim.log")
        defer { sim.terminate() }
        try await fleet.wait("the simulated devices online", timeout: 15) {
            let views = try fleet.ctlJSON(["device", "list"])["devices"] as? [[String: Any]] ?? []
            return views.filter { $0["reportedState"] as? String == "active" }.count == 3
        }
        // The controller is stopped while the command is forged under its identity, then started again.
        let ack = try fleet.sendCommand("rt-0000001", "rotate", seq: 1)
        #expect(ack?.outcome == "done", "ack: \(ack?.raw ?? "none")")
        // The device renews once the controller is back; it holds 20 s, time enough for a restart on a loaded machine (10 s was not).
        try fleet.startController()
        #expect(try await offPool { sim.wait(timeout: 40) } == 0, "fleetsim: \((try? String(contentsOfFile: "\(fleet.directory)/fleetsim.log", encoding: .utf8)) ?? "")")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let counters = summary["counters"] as? [String: Int] ?? [:]
        #expect(counters["rotationsFollowed"] == 1)
        #expect(counters["commandsRefused"] == 0)
        let shown = try fleet.ctlJSON(["device", "show", "rt-0000001"])
        #expect((shown["certificates"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }.sorted() == ["enroll", "renew"],
                "the rotation produced a renewal in the register")
        passed = true
    }

    @Test("a campaign over simulated devices (site selector): each renews with the campaign id, reports the new serial and is marked succeeded; a tag selects exactly the devices to revoke")
    func campaignAndBulkRevocation() async throws {
        let fleet = try Fleet(ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let dir = fleet.directory
        let sim = try ChildProcess("\(fleet.bin)/lanyard-fleetsim", [
            "run", "--devices", "6", "--prefix", "cp", "--site", "bench-site", "--tag", "bench-revoke", "--tagged", "2",
            "--bundle", fleet.bundle, "--socket", fleet.socket,
            "--port", String(fleet.broker.operationalPort), "--bootstrap-port", String(fleet.broker.bootstrapPort),
            "--rounds", "none", "--hold", "60", "--ready-file", "\(dir)/ready", "--stop-file", "\(dir)/stop",
            "--event-log", "\(dir)/events", "--quiet", "--json", "\(dir)/fleetsim.json",
        ], outputPath: "\(dir)/fleetsim.log")
        defer { sim.terminate() }
        try await fleet.wait("the simulated devices online", timeout: 20) { FileManager.default.fileExists(atPath: "\(dir)/ready") }

        // 01 — the campaign, selected by the site the simulator registered.
        let created = try fleet.ctlJSON(["campaign", "create", "--selector", "site=bench-site", "--reason", "test", "--max-per-minute", "1000",
                                         "--timeout", "30s"])
        let id = try #require(created["id"] as? String)
        #expect(created["total"] as? Int == 6)
        _ = try fleet.ctlJSON(["campaign", "start", id])
        var status: [String: Any] = [:]
        try await fleet.wait("the campaign completed", timeout: 30) {
            status = try fleet.ctlJSON(["campaign", "status", id])
            return status["state"] as? String != "running"
        }
        #expect(status["state"] as? String == "completed")
        #expect((status["counts"] as? [String: Int])?["succeeded"] == 6, "\(status)")
        let devices = status["devices"] as? [[String: Any]] ?? []
        for device in devices {
            let shown = try fleet.ctlJSON(["device", "show", device["id"] as? String ?? ""])
            let serials = (shown["certificates"] as? [[String: Any]] ?? []).compactMap { $0["serial"] as? String }
            #expect(serials.contains(device["issuedSerial"] as? String ?? "-"), "the campaign's serial is in the register")
        }
        let events = (try? String(contentsOfFile: "\(dir)/events", encoding: .utf8)) ?? ""
        #expect(events.split(separator: "\n").filter { $0.hasPrefix("rotated ") }.count == 6, "\(events)")

        // 02 — the tag matches exactly the first two devices; their revocation is observed by the simulator.
        let revoked = try fleet.ctlJSON(["revoke", "--selector", "tag=bench-revoke", "--reason", "keyCompromise"])
        #expect((revoked["matched"] as? [String])?.sorted() == ["cp-0000000", "cp-0000001"])
        try await fleet.wait("the broker refused both revoked certificates", timeout: 20) {
            let lines = ((try? String(contentsOfFile: "\(dir)/events", encoding: .utf8)) ?? "").split(separator: "\n")
            return lines.filter { $0.hasPrefix("refused ") }.count == 2
        }
        FileManager.default.createFile(atPath: "\(dir)/stop", contents: nil)
        #expect(try await offPool { sim.wait(timeout: 20) } == 0, "fleetsim: \((try? String(contentsOfFile: "\(dir)/fleetsim.log", encoding: .utf8)) ?? "")")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/fleetsim.json"))) as? [String: Any])
        let counters = summary["counters"] as? [String: Int] ?? [:]
        #expect(counters["rotationsFollowed"] == 6)
        #expect(counters["revocationsFollowed"] == 2)
        #expect(counters["commandsRefused"] == 0)
        passed = true
    }
}
