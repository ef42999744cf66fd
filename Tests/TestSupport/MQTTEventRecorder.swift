import Foundation
import Shared

/// Drains an `MQTTClient`'s single-consumer event stream into a buffer that
/// tests can wait on.
package final class MQTTEventRecorder: @unchecked Sendable {
    package struct Timeout: Error, CustomStringConvertible {
        package var what: String
        package var seen: [String]
        package var description: String { "timed out waiting for \(what); events: \(seen)" }
    }

    private let lock = NSLock()
    private var buffer: [MQTTEvent] = []
    private var finished = false
    private var task: Task<Void, Never>?

    package init(_ events: AsyncStream<MQTTEvent>) {
        task = Task { [weak self] in
            for await event in events {
                self?.append(event)
            }
            self?.finish()
        }
    }

    deinit { task?.cancel() }

    private func append(_ event: MQTTEvent) { lock.withLock { buffer.append(event) } }
    private func finish() { lock.withLock { finished = true } }

    /// All events so far.
    package var events: [MQTTEvent] { lock.withLock { buffer } }
    /// True once the stream has finished.
    package var isFinished: Bool { lock.withLock { finished } }

    /// Messages received so far.
    package var messages: [MQTTMessage] {
        events.compactMap { if case .message(let m) = $0 { m } else { nil } }
    }

    package func count(where predicate: (MQTTEvent) -> Bool) -> Int {
        events.filter(predicate).count
    }

    /// Waits until at least `count` events match `predicate`; returns the last match.
    @discardableResult
    package func wait(
        for what: String, count: Int = 1, timeout: Double = 10, _ predicate: @escaping @Sendable (MQTTEvent) -> Bool
    ) async throws -> MQTTEvent {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let matches = events.filter(predicate)
            if matches.count >= count { return matches[count - 1] }
            if Date() > deadline { throw Timeout(what: what, seen: events.map { "\($0)" }) }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// Waits until the event stream has finished (after `stop()`).
    package func waitFinished(timeout: Double = 10) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !isFinished {
            if Date() > deadline { throw Timeout(what: "end of stream", seen: events.map { "\($0)" }) }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    package func waitConnected(count: Int = 1, timeout: Double = 10) async throws {
        try await wait(for: ".connected", count: count, timeout: timeout) { if case .connected = $0 { true } else { false } }
    }

    /// Waits for a message on exactly `topic`.
    package func waitMessage(topic: String, timeout: Double = 10) async throws -> MQTTMessage {
        let event = try await wait(for: "message on \(topic)", timeout: timeout) {
            if case .message(let m) = $0 { m.topic == topic } else { false }
        }
        guard case .message(let message) = event else { fatalError("unreachable") }
        return message
    }
}

extension MQTTEvent {
    package var isConnected: Bool { if case .connected = self { true } else { false } }
    package var isConnectionFailed: Bool { if case .connectionFailed = self { true } else { false } }
    package var isDisconnected: Bool { if case .disconnected = self { true } else { false } }
}
