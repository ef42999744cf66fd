import Foundation
import Testing

@testable import Controller
import Shared

@Suite("CommandSender: per-device sequence and acknowledgements")
struct CommandSenderTests {
    func claims(_ message: (topic: String, payload: [UInt8])) throws -> CommandClaims {
        let jws = try CompactJWS(compact: String(decoding: message.payload, as: UTF8.self))
        return try JSONDecoder().decode(CommandClaims.self, from: Data(jws.payloadJSON))
    }

    @Test("seq strictly increases per device and is independent between devices")
    func seqPerDevice() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        let a = try #require(DeviceID("gw-1")), b = try #require(DeviceID("gw-2"))
        #expect(f.commands.send(to: a, command: "ping"))
        #expect(f.commands.send(to: a, command: "rotate", args: ["campaign": "c1"]))
        #expect(f.commands.send(to: b, command: "ping"))
        f.clock.advance(10)
        #expect(f.commands.send(to: a, command: "ping"))

        let sent = try f.transport.published.map { ($0.topic, try claims($0)) }
        #expect(sent.map(\.0) == ["lanyard/v1/dev/gw-1/cmd", "lanyard/v1/dev/gw-1/cmd", "lanyard/v1/dev/gw-2/cmd", "lanyard/v1/dev/gw-1/cmd"])
        #expect(sent.filter { $0.1.sub == "gw-1" }.map(\.1.seq) == [1, 2, 3])
        #expect(sent.filter { $0.1.sub == "gw-2" }.map(\.1.seq) == [1])
        #expect(sent[1].1.args == ["campaign": "c1"])
        #expect(Set(sent.map(\.1.jti)).count == 4)
        #expect(sent[3].1.iat == Int64(referenceTime.timeIntervalSince1970) + 10)
        #expect(try f.sqlite("SELECT command_seq FROM devices ORDER BY id") == "3\n1\n")
        #expect(try f.sqlite("SELECT seq FROM commands WHERE device_id = 'gw-1' ORDER BY seq") == "1\n2\n3\n")
    }

    @Test("seq survives a restart of the controller (it is persisted)")
    func seqPersisted() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let id = try #require(DeviceID("gw-1"))
        #expect(f.commands.send(to: id, command: "ping"))
        // A new sender on a new Store over the same file, as after a restart.
        let store = try Store(path: f.databasePath)
        let transport = RecordingTransport()
        let sender = CommandSender(store: store, signer: f.commands.signer, transport: transport, trustDomain: testTrustDomain,
                                   ttl: .seconds(60), clock: f.clock.function, log: Logger(component: "t", minimum: .error))
        #expect(sender.send(to: id, command: "ping"))
        #expect(try claims(try unwrapped(transport.published.first)).seq == 2)
    }

    @Test("sending to an unknown device fails and publishes nothing")
    func sendUnknownDevice() throws {
        let f = try ControllerFixture()
        #expect(f.commands.send(to: try unwrapped(DeviceID("ghost")), command: "ping") == false)
        #expect(f.transport.published.isEmpty)
        #expect(try f.sqlite("SELECT count(*) FROM commands") == "0\n")
    }

    @Test("recordAck stores outcome, code and time once, only for the device the command was sent to")
    func recordAck() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        let a = try #require(DeviceID("gw-1")), b = try #require(DeviceID("gw-2"))
        #expect(f.commands.send(to: a, command: "ping"))
        #expect(f.commands.send(to: a, command: "retire"))
        let jti1 = try claims(f.transport.published[0]).jti
        let jti2 = try claims(f.transport.published[1]).jti

        // Another device cannot acknowledge gw-1's command.
        f.commands.recordAck(CommandAck(jti: jti1, outcome: "done"), from: b)
        #expect(try f.sqlite("SELECT acked_at IS NULL FROM commands WHERE jti = '\(jti1)'") == "1\n")

        f.clock.advance(5)
        f.commands.recordAck(CommandAck(jti: jti1, outcome: "done"), from: a)
        f.commands.recordAck(CommandAck(jti: jti2, outcome: "refused", code: "not_supported", message: "no"), from: a)
        let t = Int64(referenceTime.timeIntervalSince1970) + 5
        #expect(try f.sqlite("SELECT outcome || '|' || ifnull(outcome_code, '-') || '|' || acked_at FROM commands WHERE jti = '\(jti1)'") == "done|-|\(t)\n")
        #expect(try f.sqlite("SELECT outcome || '|' || ifnull(outcome_code, '-') || '|' || acked_at FROM commands WHERE jti = '\(jti2)'") == "refused|not_supported|\(t)\n")

        // A second (replayed) ack does not overwrite the first.
        f.clock.advance(5)
        f.commands.recordAck(CommandAck(jti: jti1, outcome: "refused", code: "x"), from: a)
        #expect(try f.sqlite("SELECT outcome || '|' || acked_at FROM commands WHERE jti = '\(jti1)'") == "done|\(t)\n")
        #expect(try f.sqlite("SELECT count(*) FROM audit WHERE action = 'command.ack'") == "4\n")
    }

    @Test("signed commands carry the command signer's chain in x5c")
    func headerCarriesSignerChain() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        #expect(f.commands.send(to: try unwrapped(DeviceID("gw-1")), command: "ping"))
        let jws = try CompactJWS(compact: String(decoding: f.transport.published[0].payload, as: UTF8.self))
        let header = try JSONDecoder().decode(CommandHeader.self, from: Data(jws.headerJSON))
        #expect(header.alg == "ES256")
        #expect(header.typ == "lanyard-cmd+jwt")
        #expect(header.x5c.count == 2)
        let signer = try Certificate(der: Array(try #require(Data(base64Encoded: header.x5c[0]))))
        #expect(signer.commonName == "lanyard-command-signer")
        #expect(signer.uriSANs == ["spiffe://test.lanyard/lanyard/commands"])
        #expect(signer.extendedKeyUsages == [ExtendedKeyUsage.lanyardCommandSigning])
        #expect(jws.verifyES256(with: signer.publicKey))
    }
}
