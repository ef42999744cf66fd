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
/// `disableClient`, which disconnects every session of that username at once.
/// Sent after the CRL reload, so the device's reconnect fails its handshake.
/// The broker answers on `…/response`, matched by `correlationData`.
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
        var start = 0
        while start < devices.count {
            let batch = Array(devices[start..<min(start + DynamicSecuritySessionCutter.batchSize, devices.count)])
            start += batch.count
            for (device, outcome) in cutBatch(batch) { each(device, outcome) }
        }
    }

    private func cutBatch(_ devices: [DeviceID]) -> [(DeviceID, SessionCutOutcome)] {
        func all(_ outcome: SessionCutOutcome) -> [(DeviceID, SessionCutOutcome)] { devices.map { ($0, outcome) } }
        let correlation = makeRequestID()
        pending.withLock { $0[correlation] = .some(nil) }
        defer { pending.withLock { _ = $0.removeValue(forKey: correlation) } }
        // Each command carries the correlation id and its device, so the
        // answers (in order, one per command) map back to devices.
        var commands: [Request.Command] = []
        for device in devices {
            commands.append(.init(command: "createClient", username: device.rawValue, correlationData: "\(correlation):\(device.rawValue)"))
            commands.append(.init(command: "disableClient", username: device.rawValue, correlationData: "\(correlation):\(device.rawValue)"))
        }
        do {
            try publish(DynamicSecuritySessionCutter.controlTopic, WireCodec.encode(Request(commands: commands)))
        } catch {
            return all(SessionCutOutcome(cut: false, error: "not sent to the broker: \(error)"))
        }
        let deadline = Date().addingTimeInterval(timeout.timeInterval)
        arrived.lock()
        defer { arrived.unlock() }
        while true {
            if let items = pending.withLock({ $0[correlation] ?? nil }) {
                return devices.map { device in
                    // "Client already exists" is expected for a device revoked before.
                    let disable = items.first { $0.command == "disableClient" && $0.correlationData == "\(correlation):\(device.rawValue)" }
                    guard let disable else { return (device, SessionCutOutcome(cut: false, error: "the broker did not answer disableClient")) }
                    if let error = disable.error { return (device, SessionCutOutcome(cut: false, error: "disableClient: \(error)")) }
                    return (device, SessionCutOutcome(cut: true, error: nil))
                }
            }
            if !arrived.wait(until: deadline) {
                return all(SessionCutOutcome(cut: false, error: "no answer from the dynamic-security plugin within \(timeout)"))
            }
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
