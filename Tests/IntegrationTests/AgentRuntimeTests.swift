import Foundation
import Shared
import Testing
import TestSupport

/// The agent's runtime shape, which the idle wake-up figure depends on
/// (docs/architecture.md §6): Swift jobs on the main thread's event loop,
/// no libdispatch worker (its pool monitor wakes the process every second),
/// and SIGTERM still stops it gracefully.
@Suite("The agent's threads: an event loop, the MQTT thread, the signal thread; no libdispatch pool", .serialized)
struct AgentRuntimeTests {
    @Test("connected and after a renewal: three threads, none of them libdispatch's; SIGTERM stops it with exit 0")
    func threads() async throws {
        let fleet = try Fleet(ttl: "15s")
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        try fleet.register("gw-rt")
        try fleet.startAgent("gw-rt")
        try await fleet.wait("gw-rt to renew once (every job type has run: timer, reply, reconnect)", timeout: 40) {
            let status = try fleet.agentStatus("gw-rt")
            return (status["renewals"] as? Int ?? 0) >= 1 && status["connected"] as? Bool == true
        }
        let agent = try #require(fleet.agent("gw-rt"))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/task")
        let names = tasks.map { (try? String(contentsOfFile: "/proc/\(agent.pid)/task/\($0)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?" }
        // libdispatch names its workers after their queues ("com.apple.root.default-qos", truncated to 15 characters).
        #expect(!names.contains { $0.contains("qos") || $0.contains("dispatch") }, "a libdispatch worker runs in the agent: \(names)")
        #expect(names.count == 3, "main loop, MQTT network thread, signal thread: \(names)")

        agent.signal(SIGTERM)
        let exit = try await offPool { agent.wait(timeout: 10) }
        #expect(exit == 0, "SIGTERM must stop the agent gracefully: \(String(describing: exit))")
        #expect(fleet.agentLog("gw-rt").contains("stopping") || fleet.agentLog("gw-rt").contains("SIGTERM"), "\(fleet.agentLog("gw-rt").suffix(400))")
        passed = true
    }
}
