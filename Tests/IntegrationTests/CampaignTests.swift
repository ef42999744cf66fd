import Foundation
import Shared
import Testing
import TestSupport

/// Rotation campaigns over real agents: the controller sends signed `rotate`
/// commands at the configured rate, canaries first; a device has succeeded
/// when it reports the certificate issued for the campaign.
@Suite("Rotation campaigns over a real Mosquitto", .serialized)
struct CampaignTests {
    /// `campaign status --json` (it exits 2 for an aborted campaign, with the JSON all the same).
    func status(_ fleet: Fleet, _ id: String) throws -> [String: Any] {
        let result = try fleet.ctl(["--json", "campaign", "status", id])
        guard [0, 2].contains(result.exitCode), let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestProcess.Failure(command: ["lanyardctl", "campaign", "status", id], result: result)
        }
        return object
    }

    func deviceStates(_ s: [String: Any]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (s["devices"] as? [[String: Any]] ?? []).map { ($0["id"] as? String ?? "", $0["state"] as? String ?? "") })
    }

    /// Registers, places on `site` and starts agents; waits until all are connected.
    func fleetAt(_ site: String, _ ids: [String], ttl: String) async throws -> Fleet {
        let fleet = try Fleet(ttl: ttl)
        for id in ids {
            try fleet.register(id)
            let updated = try fleet.ctl(["device", "update", id, "--site", site])
            try #require(updated.succeeded, "\(updated.stderr)")
            try fleet.startAgent(id)
        }
        try await fleet.wait("\(ids.count) agents to enroll and connect", timeout: 30) {
            try ids.allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }
        return fleet
    }

    @Test("2 per minute with a canary: the canary first, never more than 2 sends a minute, pause holds, a controller killed -9 resumes without repeating a device")
    func rateCanaryPauseAndCrash() async throws {
        let ids = ["gw-c1", "gw-c2", "gw-c3", "gw-c4"]
        // A 1 h lifetime: no scheduled renewal interferes with the campaign's.
        let fleet = try await fleetAt("line-9", ids, ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }

        let created = try fleet.ctlJSON(["campaign", "create", "--selector", "site=line-9", "--trigger", "firmware.updated",
                                         "--reason", "firmware 4.2 on line 9", "--max-per-minute", "2", "--canary", "1", "--timeout", "30s"])
        let campaign = try #require(created["id"] as? String)
        #expect(created["state"] as? String == "draft" && created["total"] as? Int == 4, "\(created)")
        let serialsBefore = try Dictionary(uniqueKeysWithValues: ids.map { ($0, try fleet.agentStatus($0)["serial"] as? String ?? "") })
        let started = Date()
        try fleet.ctl(["campaign", "start", campaign])

        // 01 — the canary (the first device) succeeds; then one more fits in the first minute; the rest wait for the rate.
        try await fleet.wait("the canary and one more device to succeed", timeout: 30) {
            deviceStates(try status(fleet, campaign)).values.filter { $0 == "succeeded" }.count == 2
        }
        var states = deviceStates(try status(fleet, campaign))
        #expect(states["gw-c1"] == "succeeded", "the canary is the first device: \(states)")
        #expect(states.values.filter { $0 == "queued" }.count == 2, "more than 2 sends in the first minute: \(states)")

        // 02 — paused: nothing new goes out, even after the minute has passed.
        try fleet.ctl(["campaign", "pause", campaign, "--reason", "shift change"])
        let minuteLeft = 62 - Date().timeIntervalSince(started)
        try await Task.sleep(for: .seconds(max(0, minuteLeft)))
        states = deviceStates(try status(fleet, campaign))
        #expect(states.values.filter { $0 == "queued" }.count == 2, "a paused campaign sent a command: \(states)")

        // 03 — the controller dies (kill -9) and comes back; resumed, the campaign finishes.
        fleet.controller?.signal(SIGKILL)
        if let controller = fleet.controller { _ = try await offPool { controller.wait(timeout: 5) } }
        fleet.stopController()
        try fleet.startController()
        try fleet.ctl(["campaign", "resume", campaign])
        try await fleet.wait("the campaign to complete", timeout: 60) { try status(fleet, campaign)["state"] as? String == "completed" }
        let final = try status(fleet, campaign)
        #expect(deviceStates(final).values.allSatisfy { $0 == "succeeded" }, "\(final)")

        // 04 — exactly once: one rotate command and one campaign renewal per device; each runs a new certificate.
        for id in ids {
            let rotations = fleet.agentLog(id).split(separator: "\n").filter { $0.contains("command accepted") && $0.contains("cmd=rotate") }
            #expect(rotations.count == 1, "\(id) got \(rotations.count) rotate commands")
            let s = try fleet.agentStatus(id)
            #expect(s["serial"] as? String != serialsBefore[id] && s["connected"] as? Bool == true, "\(id): \(s)")
        }
        let audit = try fleet.ctl(["audit", "export"]).stdout.split(separator: "\n")
        for id in ids {
            let renewals = audit.filter { $0.contains("\"renew\"") && $0.contains("\"\(id)\"") && $0.contains("reason=campaign") }
            #expect(renewals.count == 1, "\(id): \(renewals.count) campaign renewals")
        }
        // The rate: the third and fourth commands went out at least a minute after the first.
        let firsts = ids.compactMap { fleet.agentLogTimes($0, containing: "cmd=rotate").first }.sorted()
        #expect(firsts.count == 4 && firsts[2] - firsts[0] >= 59, "rotate times (s of day): \(firsts)")
        // Progress for people: the bar and the counts.
        let shown = try fleet.ctl(["campaign", "status", campaign])
        #expect(shown.stdout.contains("4/4 succeeded") && shown.stdout.contains("completed"), "\(shown.stdout)")
        print("campaign: 4 devices at 2/min with a canary, a pause and a kill -9, completed in \(Int(Date().timeIntervalSince(started))) s")
        passed = true
    }

    @Test("offline devices time out at the end of the window and the failures abort the campaign; status exits 2")
    func offlineTimeoutAndAbort() async throws {
        let ids = ["gw-o1", "gw-o2", "gw-o3"]
        let fleet = try await fleetAt("line-7", ids, ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        // Two of three are switched off (their agents report `offline` as they stop).
        fleet.stopAgent("gw-o2")
        fleet.stopAgent("gw-o3")
        try await fleet.wait("both to be reported offline", timeout: 10) {
            try ["gw-o2", "gw-o3"].allSatisfy { try fleet.ctlJSON(["device", "show", $0])["reportedState"] as? String == "offline" }
        }
        let created = try fleet.ctlJSON(["campaign", "create", "--selector", "site=line-7", "--reason", "vendor change", "--trigger", "vendor.changed",
                                         "--max-per-minute", "60", "--window", "10s", "--timeout", "20s",
                                         "--abort-failure-pct", "50", "--abort-min-executed", "2"])
        let campaign = try #require(created["id"] as? String)
        try fleet.ctl(["campaign", "start", campaign])
        try await fleet.wait("the online device to succeed and the others to wait", timeout: 20) {
            let states = deviceStates(try status(fleet, campaign))
            return states["gw-o1"] == "succeeded" && states["gw-o2"] == "waiting" && states["gw-o3"] == "waiting"
        }
        try await fleet.wait("the campaign to abort", timeout: 30) { try status(fleet, campaign)["state"] as? String == "aborted" }
        let final = try status(fleet, campaign)
        let devices = final["devices"] as? [[String: Any]] ?? []
        #expect(devices.filter { $0["state"] as? String == "timed_out" && $0["code"] as? String == "offline" }.count == 2, "\(devices)")
        #expect((final["endReason"] as? String ?? "").contains("failures"), "\(final)")
        #expect(try fleet.ctl(["campaign", "status", campaign]).exitCode == 2)
        #expect(try fleet.ctl(["campaign", "resume", campaign]).exitCode == 1, "an aborted campaign cannot be resumed")
        passed = true
    }
}

/// Lifecycle events posted the way a change-management system would, with
/// the action each type calls for.
@Suite("Lifecycle events over a real Mosquitto", .serialized)
struct LifecycleEventTests {
    @Test("firmware.updated starts a campaign that rotates the devices; device.compromised revokes at once; device.retired wipes, revokes, retires and records the check")
    func eventsTakeTheirActions() async throws {
        let fleet = try Fleet(ttl: "1h")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let placement = ["gw-e1": "line-5", "gw-e2": "line-5", "gw-e3": "line-6", "gw-e4": "line-6"]
        for (id, site) in placement.sorted(by: { $0.key < $1.key }) {
            try fleet.register(id)
            try #require(try fleet.ctl(["device", "update", id, "--site", site]).succeeded)
            try fleet.startAgent(id)
        }
        try await fleet.wait("four agents to enroll and connect", timeout: 30) {
            try placement.keys.allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }
        let serials = try Dictionary(uniqueKeysWithValues: placement.keys.map { ($0, try fleet.agentStatus($0)["serial"] as? String ?? "") })

        // 01 — firmware 5.1 on line 5: a campaign from the default template, started at once.
        let fw = try fleet.ctlJSON(["event", "firmware.updated", "--selector", "site=line-5", "--reason", "firmware 5.1", "--ref", "CHG-1234"])
        let campaign = try #require((fw["campaign"] as? [String: Any])?["id"] as? String, "\(fw)")
        #expect(fw["action"] as? String == "campaign" && (fw["campaign"] as? [String: Any])?["trigger"] as? String == "firmware.updated")
        try await fleet.wait("the firmware campaign to complete", timeout: 40) {
            try fleet.ctlJSON(["campaign", "status", campaign])["state"] as? String == "completed"
        }
        for id in ["gw-e1", "gw-e2"] {
            try await fleet.wait("\(id) to run its new certificate", timeout: 10) {
                let s = try fleet.agentStatus(id)
                return s["serial"] as? String != serials[id] && s["connected"] as? Bool == true
            }
        }
        #expect(try fleet.agentStatus("gw-e3")["serial"] as? String == serials["gw-e3"], "line 6 was not in the event")
        // gw-e4 is switched off before its retirement below.
        fleet.stopAgent("gw-e4")

        // 02 — gw-e2 is compromised: revoked at once, its agent erases its key.
        let compromised = try fleet.ctlJSON(["event", "device.compromised", "--device", "gw-e2", "--reason", "tamper alarm", "--ref", "INC-77"])
        let revoked = ((compromised["revocation"] as? [String: Any])?["results"] as? [[String: Any]]) ?? []
        #expect(compromised["action"] as? String == "revoke" && revoked.count == 1 && revoked.first?["sessionCut"] as? Bool == true, "\(compromised)")
        try await fleet.wait("gw-e2 to report revoked", timeout: 15) { try fleet.agentStatus("gw-e2")["state"] as? String == "revoked" }

        // 03 — gw-e3 is retired: the agent confirms the wipe and stops for good; the register says retired.
        let retired = try fleet.ctl(["--json", "event", "device.retired", "--device", "gw-e3", "--reason", "line 6 dismantled"])
        #expect(retired.exitCode == 0, "\(retired.stdout) \(retired.stderr)")
        let checks = (try JSONSerialization.jsonObject(with: Data(retired.stdout.utf8)) as? [String: Any])?["retirements"] as? [[String: Any]] ?? []
        #expect(checks.count == 1 && checks.first?["keyWipeAcknowledged"] as? Bool == true && checks.first?["retired"] as? Bool == true
                && checks.first?["flagged"] as? Bool == false, "\(checks)")
        try await fleet.wait("gw-e3's agent to exit as retired", timeout: 15) { fleet.agent("gw-e3")?.terminationStatus == 4 }
        #expect(try fleet.ctlJSON(["device", "show", "gw-e3"])["state"] as? String == "retired")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fleet.stateDirectory("gw-e3")).filter { $0.hasPrefix("gen-") || $0 == "current" }
        #expect(leftovers.isEmpty, "credential files left after retirement: \(leftovers)")
        let audit = try fleet.ctl(["audit", "export"]).stdout
        #expect(audit.contains("event.firmware.updated") && audit.contains("ref=CHG-1234") && audit.contains("device.retirement-check"), "\(audit.suffix(800))")

        // 03b — a device that never confirms the wipe (off): revoked and retired all the same, but flagged, and lanyardctl exits 2.
        let unconfirmed = try fleet.ctl(["--json", "event", "device.retired", "--device", "gw-e4", "--reason", "line 6 dismantled"])
        #expect(unconfirmed.exitCode == 2, "\(unconfirmed.stdout) \(unconfirmed.stderr)")
        let flagged = (try JSONSerialization.jsonObject(with: Data(unconfirmed.stdout.utf8)) as? [String: Any])?["retirements"] as? [[String: Any]] ?? []
        #expect(flagged.first?["flagged"] as? Bool == true && flagged.first?["keyWipeAcknowledged"] as? Bool == false
                && flagged.first?["retired"] as? Bool == true, "\(flagged)")
        #expect(try fleet.ctl(["audit", "export"]).stdout.contains("\"flagged\""))

        // 04 — an unknown event type is refused.
        #expect(try fleet.ctl(["event", "moon.phase", "--device", "gw-e1", "--reason", "x"]).exitCode == 1)
        passed = true
    }
}
