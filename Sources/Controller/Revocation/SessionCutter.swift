import Foundation
import Shared
import Synchronization

/// Cuts a revoked device's live MQTT session. TLS checks the CRL only at the
/// handshake, so a device that ignores the revoke command would otherwise stay
/// connected until it disconnects on its own.
package protocol SessionCutter: Sendable {
    /// Cuts every device's sessions, calling `each` as each device's outcome
    /// is known. Blocks up to the cutter's timeout per batch; never throws:
    /// the outcomes say what happened.
    func cut(_ devices: [DeviceID], each: (DeviceID, SessionCutOutcome) -> Void)
}

extension SessionCutter {
    package func cut(_ device: DeviceID) -> SessionCutOutcome {
        var result = SessionCutOutcome.notConfigured
        cut([device]) { _, outcome in result = outcome }
        return result
    }
}

package struct SessionCutOutcome: Sendable, Equatable {
    package var cut: Bool
    package var error: String?

    package static let notConfigured = SessionCutOutcome(cut: false, error: "no session cutter configured")
}

/// Mosquitto's dynamic-security plugin (loaded on the operational listener
/// beside the ACL file, see deploy/mosquitto): `createClient` for the
/// device's identity (certificate logins never need it otherwise), then
/// `deleteClient`, which disconnects every session of that username at once.
/// Sent after the CRL reload, so the device's reconnect fails its handshake.
/// The broker answers on `…/response`, matched by `correlationData`.
///
/// Delete, not `disableClient`: Mosquitto 2.0.11's plugin rewrites its whole
/// JSON file after every command, so clients left behind (one per device
/// ever revoked) made each cut slower than the last (docs/benchmarks.md §12);
/// the CRL, not the plugin, keeps a revoked certificate out.
package final class DynamicSecuritySessionCutter: SessionCutter {
    package static let controlTopic = "$CONTROL/dynamic-security/v1"
    package static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    private let publish: @Sendable (String, [UInt8]) throws -> Void
    private let timeout: Duration
    private let log: (@Sendable (String) -> Void)?
    /// Waiting revocations by correlation id, and the answers that arrived.
    private let pending = Mutex<[String: [Response.Item]?]>([:])
    private let arrived = NSCondition()

    /// - Parameter publish: sends a payload to a topic over the controller's broker connection (QoS 1).
    package init(timeout: Duration = .seconds(3), log: (@Sendable (String) -> Void)? = nil,
                 publish: @escaping @Sendable (String, [UInt8]) throws -> Void) {
        self.publish = publish
        self.timeout = timeout
        self.log = log
    }

    private struct Request: Encodable {
        struct Command: Encodable {
            var command: String
            var username: String
            var correlationData: String
        }
        var commands: [Command]
    }

    struct Response: Decodable {
        struct Item: Decodable {
            var command: String?
            var error: String?
            var correlationData: String?
        }
        var responses: [Item]
    }

    /// Devices per control message: two commands each keep a request near
    /// 8 KiB and the plugin's answer near 9 KiB, well under the broker's
    /// 64 KiB max_packet_size.
    static let batchSize = 50
    /// The plugin's answer to a batch (about 185 bytes a device); a larger
    /// one is not from this cutter.
    static let maxResponseBytes = 64 * 1024

    package func cut(_ devices: [DeviceID], each: (DeviceID, SessionCutOutcome) -> Void) {
        let batches = stride(from: 0, to: devices.count, by: DynamicSecuritySessionCutter.batchSize).map {
            Array(devices[$0..<min($0 + DynamicSecuritySessionCutter.batchSize, devices.count)])
        }
        // Every batch is published before any answer is awaited: one round
        // trip for a bulk revocation instead of one per batch.
        var sent: [(correlation: String, devices: [DeviceID])] = []
        for batch in batches {
            switch send(batch) {
            case .success(let correlation): sent.append((correlation, batch))
            case .failure(let error): for device in batch { each(device, SessionCutOutcome(cut: false, error: "not sent to the broker: \(error)")) }
            }
        }
        // The plugin answers in order; each answer gives the next one the
        // full timeout again, a silent plugin costs the timeout once.
        var deadline = Date().addingTimeInterval(timeout.timeInterval)
        for (correlation, batch) in sent {
            defer { pending.withLock { _ = $0.removeValue(forKey: correlation) } }
            guard let items = awaitAnswer(correlation, until: deadline) else {
                for device in batch { each(device, SessionCutOutcome(cut: false, error: "no answer from the dynamic-security plugin within \(timeout)")) }
                continue
            }
            deadline = max(deadline, Date().addingTimeInterval(timeout.timeInterval))
            for device in batch {
                // "Client already exists" from createClient is expected (a client left by an earlier version's disableClient).
                let delete = items.first { $0.command == "deleteClient" && $0.correlationData == "\(correlation):\(device.rawValue)" }
                guard let delete else { each(device, SessionCutOutcome(cut: false, error: "the broker did not answer deleteClient")); continue }
                if let error = delete.error { each(device, SessionCutOutcome(cut: false, error: "deleteClient: \(error)")); continue }
                each(device, SessionCutOutcome(cut: true, error: nil))
            }
        }
    }

    /// Publishes one batch's control message; returns its correlation id.
    private func send(_ devices: [DeviceID]) -> Result<String, any Error> {
        let correlation = makeRequestID()
        pending.withLock { $0[correlation] = .some(nil) }
        // Each command carries the correlation id and its device, so the
        // answers (in order, one per command) map back to devices.
        var commands: [Request.Command] = []
        for device in devices {
            commands.append(.init(command: "createClient", username: device.rawValue, correlationData: "\(correlation):\(device.rawValue)"))
            commands.append(.init(command: "deleteClient", username: device.rawValue, correlationData: "\(correlation):\(device.rawValue)"))
        }
        do {
            try publish(DynamicSecuritySessionCutter.controlTopic, WireCodec.encode(Request(commands: commands)))
            return .success(correlation)
        } catch {
            pending.withLock { _ = $0.removeValue(forKey: correlation) }
            return .failure(error)
        }
    }

    private func awaitAnswer(_ correlation: String, until deadline: Date) -> [Response.Item]? {
        arrived.lock()
        defer { arrived.unlock() }
        while true {
            if let items = pending.withLock({ $0[correlation] ?? nil }) { return items }
            if !arrived.wait(until: deadline) { return pending.withLock { $0[correlation] ?? nil } }
        }
    }

    /// A message on `responseTopic` (the controller's MQTT handler calls this).
    package func handleResponse(_ payload: [UInt8]) {
        let response: Response
        do {
            response = try WireCodec.decode(Response.self, from: payload, limit: DynamicSecuritySessionCutter.maxResponseBytes)
        } catch {
            // A dropped answer would leave every revoked session of its batch open: say so.
            log?("dynamic-security answer of \(payload.count) bytes not understood: \(error)")
            return
        }
        // correlationData is "<batch id>:<device>": group the answers by batch.
        var byCorrelation: [String: [Response.Item]] = [:]
        for item in response.responses {
            guard let c = item.correlationData, let colon = c.firstIndex(of: ":") else { continue }
            byCorrelation[String(c[..<colon]), default: []].append(item)
        }
        let matched = pending.withLock { waiting -> Bool in
            var any = false
            for (correlation, items) in byCorrelation where waiting[correlation] != nil {
                waiting[correlation] = .some(items)
                any = true
            }
            return any
        }
        if matched {
            arrived.lock()
            arrived.broadcast()
            arrived.unlock()
        }
    }
}
