import Foundation
import Shared
import Synchronization

/// Cuts a revoked device's live MQTT session. TLS checks the CRL only at the
/// handshake, so a device that ignores the revoke command would otherwise stay
/// connected until it disconnects on its own.
package protocol SessionCutter: Sendable {
    /// Blocks up to the cutter's timeout; never throws: the outcome says what happened.
    func cut(_ device: DeviceID) -> SessionCutOutcome
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
    /// Waiting revocations by correlation id, and the answers that arrived.
    private let pending = Mutex<[String: [Response.Item]?]>([:])
    private let arrived = NSCondition()

    /// - Parameter publish: sends a payload to a topic over the controller's broker connection (QoS 1).
    package init(timeout: Duration = .seconds(3), publish: @escaping @Sendable (String, [UInt8]) throws -> Void) {
        self.publish = publish
        self.timeout = timeout
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

    package func cut(_ device: DeviceID) -> SessionCutOutcome {
        let correlation = makeRequestID()
        pending.withLock { $0[correlation] = .some(nil) }
        defer { pending.withLock { _ = $0.removeValue(forKey: correlation) } }
        let request = Request(commands: [
            .init(command: "createClient", username: device.rawValue, correlationData: correlation),
            .init(command: "disableClient", username: device.rawValue, correlationData: correlation),
        ])
        do {
            try publish(DynamicSecuritySessionCutter.controlTopic, WireCodec.encode(request))
        } catch {
            return SessionCutOutcome(cut: false, error: "not sent to the broker: \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout.timeInterval)
        arrived.lock()
        defer { arrived.unlock() }
        while true {
            if let items = pending.withLock({ $0[correlation] ?? nil }) {
                // "Client already exists" is expected for a device revoked before (or re-revoked).
                let disable = items.first { $0.command == "disableClient" }
                guard let disable else { return SessionCutOutcome(cut: false, error: "the broker did not answer disableClient") }
                if let error = disable.error { return SessionCutOutcome(cut: false, error: "disableClient: \(error)") }
                return SessionCutOutcome(cut: true, error: nil)
            }
            if !arrived.wait(until: deadline) {
                return SessionCutOutcome(cut: false, error: "no answer from the dynamic-security plugin within \(timeout)")
            }
        }
    }

    /// A message on `responseTopic` (the controller's MQTT handler calls this).
    package func handleResponse(_ payload: [UInt8]) {
        guard let response = try? WireCodec.decode(Response.self, from: payload) else { return }
        var byCorrelation: [String: [Response.Item]] = [:]
        for item in response.responses { if let c = item.correlationData { byCorrelation[c, default: []].append(item) } }
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
