import Foundation
import Testing

@testable import Controller
import Shared

/// The dynamic-security exchange without a broker: a stand-in answers every
/// control message the way Mosquitto 2.0.11's plugin does (one response per
/// command, correlationData echoed), from another thread.
@Suite("Session cutter: batches and the plugin's answers")
struct SessionCutterTests {
    final class FakePlugin: @unchecked Sendable {
        let lock = NSLock()
        var requests = 0
        var largestAnswer = 0
        weak var cutter: DynamicSecuritySessionCutter?
        var failFor: Set<String> = []

        func publish(_ topic: String, _ payload: [UInt8]) throws {
            let request = try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
            let commands = request?["commands"] as? [[String: Any]] ?? []
            var responses: [[String: Any]] = []
            for c in commands {
                var r: [String: Any] = ["command": c["command"] ?? "", "correlationData": c["correlationData"] ?? ""]
                let user = c["username"] as? String ?? ""
                if c["command"] as? String == "createClient" { r["error"] = "Client already exists" }
                if c["command"] as? String == "deleteClient", failFor.contains(user) { r["error"] = "Client not found" }
                responses.append(r)
            }
            let answer = Array(try JSONSerialization.data(withJSONObject: ["responses": responses]))
            lock.withLock {
                requests += 1
                largestAnswer = max(largestAnswer, answer.count)
            }
            let cutter = self.cutter
            Thread.detachNewThread { cutter?.handleResponse(answer) }
        }
    }

    @Test("120 devices: cut in batches, every answer understood in time, a plugin error reported per device")
    func largeBatchesAreUnderstood() throws {
        let plugin = FakePlugin()
        plugin.failFor = ["gw-077"]
        let cutter = DynamicSecuritySessionCutter(timeout: .seconds(3)) { topic, payload in try plugin.publish(topic, payload) }
        plugin.cutter = cutter
        let devices = (0..<120).map { DeviceID(String(format: "gw-%03d", $0))! }
        var outcomes: [String: SessionCutOutcome] = [:]
        let started = Date()
        cutter.cut(devices) { outcomes[$0.rawValue] = $1 }
        #expect(outcomes.count == 120)
        #expect(outcomes.filter { $0.value.cut }.count == 119, "\(outcomes.filter { !$0.value.cut })")
        #expect(outcomes["gw-077"]?.error?.contains("Client not found") == true)
        #expect(plugin.requests == 3, "batches of \(DynamicSecuritySessionCutter.batchSize): \(plugin.requests) requests")
        // Answers were never waited out: nowhere near 3 s per batch.
        #expect(Date().timeIntervalSince(started) < 2)
        // A full batch's answer fits what handleResponse accepts. (Mosquitto's own answers run ~185 bytes a
        // device: batches of 100 answered in 18.5 KB, over the 16 KiB device-message limit first used here,
        // and were dropped — docs/benchmarks.md §9.)
        #expect(plugin.largestAnswer < DynamicSecuritySessionCutter.maxResponseBytes)
    }

    @Test("every batch is published before any answer is awaited; a silent plugin costs the timeout once, not once per batch")
    func batchesArePipelined() throws {
        // A plugin that answers nothing until it has all three requests: a cutter waiting batch by batch would time out.
        final class HoldingPlugin: @unchecked Sendable {
            let lock = NSLock()
            var held: [[UInt8]] = []
            weak var cutter: DynamicSecuritySessionCutter?
            func publish(_ payload: [UInt8]) throws {
                let request = try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
                let responses = (request?["commands"] as? [[String: Any]] ?? []).map { ["command": $0["command"] ?? "", "correlationData": $0["correlationData"] ?? ""] }
                let answer = Array(try JSONSerialization.data(withJSONObject: ["responses": responses]))
                let release: [[UInt8]] = lock.withLock {
                    held.append(answer)
                    return held.count == 3 ? held : []
                }
                let cutter = self.cutter
                if !release.isEmpty { Thread.detachNewThread { for a in release { cutter?.handleResponse(a) } } }
            }
        }
        let plugin = HoldingPlugin()
        let cutter = DynamicSecuritySessionCutter(timeout: .seconds(2)) { _, payload in try plugin.publish(payload) }
        plugin.cutter = cutter
        let devices = (0..<120).map { DeviceID(String(format: "gw-%03d", $0))! }
        var cut = 0
        cutter.cut(devices) { if $1.cut { cut += 1 } }
        #expect(cut == 120)

        let silent = DynamicSecuritySessionCutter(timeout: .milliseconds(500)) { _, _ in }
        let started = Date()
        var errors = 0
        silent.cut(devices) { if $1.error?.contains("no answer") == true { errors += 1 } }
        #expect(errors == 120)
        #expect(Date().timeIntervalSince(started) < 1.4, "three batches, one timeout: \(Date().timeIntervalSince(started)) s")
    }

    @Test("an answer too large or unreadable is not taken for success: the batch times out as not cut")
    func unreadableAnswer() throws {
        let cutter = DynamicSecuritySessionCutter(timeout: .milliseconds(300)) { _, _ in }
        let outcome = cutter.cut(DeviceID("gw-1")!)
        cutter.handleResponse(Array(repeating: UInt8(ascii: "x"), count: 100_000))
        #expect(outcome.cut == false && outcome.error?.contains("no answer") == true)
    }
}
