import Controller
import Foundation
import Shared
import Testing
import TestSupport

/// The campaign engine's rate ramp, abort failure types and selectors, on a
/// register with enrolled devices and a hand-moved clock: each tick's sends
/// are counted from the commands the recording transport saw. (Real agents:
/// IntegrationTests.CampaignTests.)
@Suite("Campaigns: exponential ramp, abort by failure type, selector alternatives and issued-before")
struct CampaignRolloutTests {
    let log = Logger(component: "campaign-test", minimum: .error)

    func fleet(_ ids: [String]) throws -> ControllerFixture {
        let f = try ControllerFixture()
        for id in ids {
            _ = try f.enrolled(id)
            try f.register.recordState(try #require(DeviceID(id)), reported: "active")
        }
        return f
    }

    func rotateSends(_ f: ControllerFixture) -> [String] {
        f.transport.published.compactMap { message -> String? in
            let parts = String(decoding: message.payload, as: UTF8.self).split(separator: ".")
            guard parts.count == 3 else { return nil }
            var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            b64 += String(repeating: "=", count: (4 - b64.count % 4) % 4)
            guard let data = Data(base64Encoded: b64), let claims = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  claims["cmd"] as? String == "rotate" else { return nil }
            return claims["sub"] as? String
        }
    }

    /// What the device and the issuer would report for a successful rotation.
    func succeed(_ campaigns: CampaignService, _ id: String, campaign: String) throws {
        let device = try #require(DeviceID(id))
        let serial = "serial-\(id)-\(UUID().uuidString.prefix(6))"
        campaigns.noteIssued(device: device, campaign: campaign, serial: serial)
        campaigns.noteState(device: device, serial: serial)
    }

    @Test("ramp from 1 a minute, ×2 per success, capped at 5: sends 1, 1, 2, then the cap — within the sliding minute")
    func exponentialRamp() throws {
        let ids = (1...8).map { "gw-ramp-\($0)" }
        let f = try fleet(ids)
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log)
        var rollout = CampaignRollout(maxPerMinute: 5, deviceTimeout: 600)
        rollout.rampBasePerMinute = 1
        rollout.rampFactor = 2
        rollout.rampEverySucceeded = 1
        #expect(rollout.ratePerMinute(succeeded: 0) == 1 && rollout.ratePerMinute(succeeded: 2) == 4 && rollout.ratePerMinute(succeeded: 3) == 5)
        let c = try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "ramp", selector: "class=sensor", rollout: rollout),
                                     register: f.register, actor: "t")
        _ = try campaigns.start(CampaignRef(id: c.id), actor: "t")
        var sentSoFar: [String] = []
        func step(_ expectedTotal: Int, _ note: String) throws {
            campaigns.tick()
            let sent = rotateSends(f)
            #expect(sent.count == expectedTotal, "\(note): \(sent)")
            for id in sent.dropFirst(sentSoFar.count) { try succeed(campaigns, id, campaign: c.id) }
            sentSoFar = sent
            f.clock.advance(1)
        }
        try step(1, "base rate 1/min")
        try step(2, "1 succeeded: rate 2/min, 1 sent in the last minute")
        try step(4, "2 succeeded: rate 4/min, 2 sent in the last minute")
        try step(5, "4 succeeded: rate capped at 5/min, 4 sent in the last minute")
        try step(5, "nothing more inside the minute")
        f.clock.advance(60)
        try step(8, "a new minute: the rest (3 left, cap 5)")
        #expect(Set(sentSoFar) == Set(ids), "each device exactly once")
        campaigns.tick()
        #expect(try campaigns.status(CampaignRef(id: c.id)).state == "completed")
    }

    @Test("no rate limit: the in-flight window paces sends; completions open it, and a silent device stops counting after a minute")
    func inFlightWindow() throws {
        let ids = (1...8).map { "gw-win-\($0)" }
        let f = try fleet(ids)
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log, maxInFlight: 3)
        let rollout = CampaignRollout(maxPerMinute: CampaignRollout.unlimitedPerMinute, deviceTimeout: 600)
        let c = try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "window", selector: "class=sensor", rollout: rollout),
                                     register: f.register, actor: "t")
        _ = try campaigns.start(CampaignRef(id: c.id), actor: "t")
        campaigns.tick()
        #expect(rotateSends(f).count == 3, "the window's size at once")
        f.clock.advance(1)
        campaigns.tick()
        #expect(rotateSends(f).count == 3, "nothing more while all three are out")
        for id in rotateSends(f).prefix(2) { try succeed(campaigns, id, campaign: c.id) }
        f.clock.advance(1)
        campaigns.tick()
        #expect(rotateSends(f).count == 5, "two completions, two more sent")
        // Nobody answers now: after a minute the silent ones no longer hold the window (their own timeout is 10 min).
        f.clock.advance(30)
        campaigns.tick()
        #expect(rotateSends(f).count == 5)
        f.clock.advance(31)
        campaigns.tick()
        #expect(rotateSends(f).count == 8, "the rest once the silent three are older than a minute")
        #expect(Set(rotateSends(f)) == Set(ids), "each device exactly once")
        let view = try campaigns.status(CampaignRef(id: c.id))
        #expect(view.counts["sent"] == 6 && view.counts["succeeded"] == 2, "\(view.counts)")
        var tooFast = rollout
        tooFast.maxPerMinute = CampaignRollout.unlimitedPerMinute + 1
        #expect(throws: WireError.self) {
            try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "x", selector: "class=sensor", rollout: tooFast),
                                 register: f.register, actor: "t")
        }
    }

    @Test("a ramp needs all three settings; the failure type must be known")
    func validation() throws {
        let f = try fleet(["gw-v"])
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log)
        var partial = CampaignRollout()
        partial.rampBasePerMinute = 1
        var unknownType = CampaignRollout(abortFailurePercent: 10)
        unknownType.abortFailureType = "rejected"
        for rollout in [partial, unknownType] {
            #expect(throws: WireError.self) {
                try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "x", selector: "id=gw-v", rollout: rollout), register: f.register, actor: "t")
            }
        }
    }

    @Test("abort on timed_out only: refusals do not count, timeouts do")
    func abortByFailureType() throws {
        let ids = (1...4).map { "gw-ab-\($0)" }
        let f = try fleet(ids)
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log)
        var rollout = CampaignRollout(maxPerMinute: 100, abortFailurePercent: 50, abortMinExecuted: 2, deviceTimeout: 30)
        rollout.abortFailureType = "timed_out"
        let c = try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "abort", selector: "class=sensor", rollout: rollout),
                                     register: f.register, actor: "t")
        _ = try campaigns.start(CampaignRef(id: c.id), actor: "t")
        campaigns.tick()
        let view = try campaigns.status(CampaignRef(id: c.id))
        #expect(view.counts["sent"] == 4)
        // Two devices refuse (failed), one succeeds: 2 of 3 executed failed, but only timeouts count.
        for id in ids.prefix(2) {
            let jti = try f.sqlite("SELECT jti FROM campaign_devices WHERE device_id = '\(id)'").trimmingCharacters(in: .whitespacesAndNewlines)
            campaigns.noteAck(device: try #require(DeviceID(id)), CommandAck(jti: jti, outcome: "refused", code: "busy"))
        }
        try succeed(campaigns, ids[2], campaign: c.id)
        campaigns.tick()
        #expect(try campaigns.status(CampaignRef(id: c.id)).state == "running", "refusals must not abort a timed_out-only campaign")
        // The last device times out: 1 timed out of 4 executed is below 50%: still no abort, and the campaign completes.
        f.clock.advance(31)
        campaigns.tick()
        let end = try campaigns.status(CampaignRef(id: c.id))
        #expect(end.state == "completed" && end.counts["timed_out"] == 1 && end.counts["failed"] == 2, "\(end.state) \(end.counts)")
    }

    @Test("selectors: alternatives (id=a|b), issued-before a date, and the bad ones refused with the reason")
    func selectors() throws {
        let f = try fleet(["gw-s1", "gw-s2", "gw-s3"])
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log)
        func matched(_ selector: String) throws -> Int {
            try campaigns.create(CampaignCreateParams(trigger: "manual", reason: "sel", selector: selector, rollout: CampaignRollout()),
                                 register: f.register, actor: "t").total
        }
        #expect(try matched("id=gw-s1|gw-s3") == 2)
        #expect(try matched("id=gw-s1|gw-s3,class=sensor") == 2)
        let now = Int64(f.clock.now.timeIntervalSince1970)
        #expect(try matched("issued-before=\(now + 1)") == 3)
        #expect(throws: WireError.self) { try matched("issued-before=\(now - 1)") }  // matches no device
        #expect(try matched("issued-before=2100-01-01") == 3)
        for bad in ["issued-before=yesterday", "issued-before=1|2", "id=a||b", "colour=red"] {
            #expect(throws: WireError.self, "\(bad)") { try matched(bad) }
        }
    }
}
