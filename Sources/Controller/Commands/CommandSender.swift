import Foundation
import Shared
import Synchronization

/// Where signed commands go: the MQTT client in production, a recorder in tests.
package protocol CommandTransport: Sendable {
    func publish(topic: String, payload: [UInt8]) throws
}

/// Signs and sends lifecycle commands. Each device has its own persisted,
/// strictly increasing `seq`, so a replayed or reordered command is refused
/// by the agent.
package struct CommandSender: Sendable {
    package let store: Store
    /// Shared by every copy of this sender: a CA rotation installs a signer from the new CA.
    private let signerSlot: SignerSlot
    package var signer: CommandSigner { signerSlot.signer.withLock { $0 } }
    package let transport: any CommandTransport
    package let trustDomain: String
    package let ttl: Duration
    package let clock: @Sendable () -> Date
    package let log: Logger

    package init(store: Store, signer: CommandSigner, transport: any CommandTransport, trustDomain: String, ttl: Duration,
                 clock: @escaping @Sendable () -> Date, log: Logger) {
        self.store = store
        self.signerSlot = SignerSlot(signer: Mutex(signer))
        self.transport = transport
        self.trustDomain = trustDomain
        self.ttl = ttl
        self.clock = clock
        self.log = log
    }

    /// Commands from now on are signed with `signer` (its chain names the new issuing CA).
    package func replaceSigner(_ signer: CommandSigner) {
        signerSlot.signer.withLock { $0 = signer }
    }

    /// Returns whether the command reached the broker.
    @discardableResult
    package func send(to device: DeviceID, command: String, args: [String: String]? = nil) -> Bool {
        sendReturningID(to: device, command: command, args: args) != nil
    }

    /// As `send`; returns the command's `jti` (what the device's ack names), nil when it was not sent.
    package func sendReturningID(to device: DeviceID, command: String, args: [String: String]? = nil) -> String? {
        let now = clock()
        let jti = makeRequestID()
        do {
            let seq = try store.transaction { db -> Int64 in
                try db.query("UPDATE devices SET command_seq = command_seq + 1 WHERE id = ?", [.text(device.rawValue)])
                guard let seq = try db.query("SELECT command_seq FROM devices WHERE id = ?", [.text(device.rawValue)]).first?.first?.int else {
                    throw WireError(.notFound, "no device \(device)")
                }
                try db.query("INSERT INTO commands(jti, device_id, seq, cmd, sent_at) VALUES (?, ?, ?, ?, ?)",
                             [.text(jti), .text(device.rawValue), .int(seq), .text(command), .int(Int64(now.timeIntervalSince1970))])
                return seq
            }
            let t = Int64(now.timeIntervalSince1970)
            let claims = CommandClaims(iss: ServiceIdentity.controllerURI(trustDomain: trustDomain), sub: device.rawValue, jti: jti, seq: seq,
                                       iat: t, exp: t + ttl.seconds, cmd: command, args: args)
            let jws = try signer.sign(claims)
            try transport.publish(topic: Topics.command(device), payload: Array(jws.utf8))
            log.info("command sent", ["device": device.rawValue, "cmd": command, "seq": String(seq), "jti": jti])
            return jti
        } catch {
            log.error("command not sent", ["device": device.rawValue, "cmd": command, "error": "\(error)"])
            return nil
        }
    }

    /// Records a device's acknowledgement of a command it was sent.
    package func recordAck(_ ack: CommandAck, from device: DeviceID) {
        let now = clock()
        do {
            // One transaction (group-committed with other callers', Store.transaction).
            try store.transaction { db in
                try db.query("UPDATE commands SET outcome = ?, outcome_code = ?, acked_at = ? WHERE jti = ? AND device_id = ? AND acked_at IS NULL",
                             [.text(String(ack.outcome.prefix(16))), ack.code.map { .text(String($0.prefix(32))) } ?? .null,
                              .int(Int64(now.timeIntervalSince1970)), .text(ack.jti), .text(device.rawValue)])
                try db.audit(time: now, actor: "device:\(device)", action: "command.ack", target: device.rawValue, outcome: String(ack.outcome.prefix(16)),
                             detail: "jti=\(String(ack.jti.prefix(64))) code=\(String((ack.code ?? "").prefix(32)))")
            }
            log.info("command acknowledged", ["device": device.rawValue, "jti": ack.jti, "outcome": ack.outcome, "code": ack.code ?? ""])
        } catch {
            log.error("cannot record ack", ["device": device.rawValue, "error": "\(error)"])
        }
    }
}

private final class SignerSlot: Sendable {
    let signer: Mutex<CommandSigner>
    init(signer: consuming Mutex<CommandSigner>) { self.signer = signer }
}
