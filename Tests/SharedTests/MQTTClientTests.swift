import Foundation
import Shared
import TestSupport
import Testing

/// A throwaway PKI and a real Mosquitto rendered from deploy/mosquitto.
struct MQTTFixture {
    let pki: TestPKI
    let broker: Broker

    init() throws {
        pki = try TestPKI()
        broker = try Broker.start(pki: pki)
    }

    func operational(_ credential: TestCredential) -> MQTTConfiguration {
        var c = MQTTConfiguration(
            host: "127.0.0.1", port: broker.operationalPort, clientID: credential.commonName, caFile: pki.bundlePath)
        c.certFile = credential.certPath
        c.keyFile = credential.keyPath
        c.reconnectMaxDelay = 2
        return c
    }

    func bootstrap(clientID: String) -> MQTTConfiguration {
        var c = MQTTConfiguration(
            host: "127.0.0.1", port: broker.bootstrapPort, clientID: clientID, caFile: pki.bundlePath)
        c.reconnectMaxDelay = 2
        return c
    }

    func tearDown() {
        broker.stop()
        pki.remove()
    }
}

/// A started client with its recorder.
struct RunningClient {
    let client: MQTTClient
    let recorder: MQTTEventRecorder

    init(_ configuration: MQTTConfiguration, subscriptions: [String] = [], log: (@Sendable (String) -> Void)? = nil)
        throws
    {
        client = try MQTTClient(configuration, log: log)
        recorder = MQTTEventRecorder(client.events)
        for filter in subscriptions { client.addSubscription(filter) }
        client.start()
    }

    func connected(timeout: Double = 10) async throws -> RunningClient {
        try await recorder.waitConnected(timeout: timeout)
        return self
    }
}

let topicPrefix = "lanyard/v1"

@Suite("MQTTClient against a real Mosquitto", .serialized)
struct MQTTClientTests {
    @Test("the controller identity and a device connect over mutual TLS; .connected follows the SUBACKs")
    func connectsAndSubscribesBeforeConnected() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let device = try await RunningClient(f.operational(try f.pki.issueDevice("gw-1"))).connected()
        #expect(device.client.isConnected)

        let controller = try RunningClient(
            f.operational(f.pki.controller), subscriptions: ["\(topicPrefix)/dev/+/state"])
        try await controller.recorder.waitConnected()
        // Published the instant .connected arrives: the subscription must already be active.
        try device.client.publish(topic: "\(topicPrefix)/dev/gw-1/state", payload: Array("online".utf8))
        let message = try await controller.recorder.waitMessage(topic: "\(topicPrefix)/dev/gw-1/state")
        #expect(message.payload == Array("online".utf8))
        #expect(controller.client.isConnected)
        #expect(controller.recorder.count { $0.isConnectionFailed || $0.isDisconnected } == 0)
        controller.client.stop()
        device.client.stop()
    }

    @Test("QoS 1 messages and retained messages arrive intact")
    func publishReceiveQoS1() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let controller = try await RunningClient(f.operational(f.pki.controller)).connected()
        let bundle = (0..<3000).map { UInt8($0 % 251) }
        try controller.client.publish(topic: "\(topicPrefix)/bundle", payload: bundle, qos: 1, retain: true)

        let device = try await RunningClient(
            f.operational(try f.pki.issueDevice("gw-2")),
            subscriptions: ["\(topicPrefix)/dev/gw-2/cmd", "\(topicPrefix)/bundle"]
        ).connected()
        let retained = try await device.recorder.waitMessage(topic: "\(topicPrefix)/bundle")
        #expect(retained.payload == bundle)
        #expect(retained.retain)

        let command: [UInt8] = [0, 1, 2, 255]
        let mid = try controller.client.publish(topic: "\(topicPrefix)/dev/gw-2/cmd", payload: command, qos: 1)
        #expect(mid > 0)
        let received = try await device.recorder.waitMessage(topic: "\(topicPrefix)/dev/gw-2/cmd")
        #expect(received.payload == command)
        #expect(received.qos == 1)
        #expect(!received.retain)
    }

    @Test("publish while offline throws not_connected; stop is idempotent and ends the stream")
    func offlineAndStop() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        var c = MQTTConfiguration(host: "127.0.0.1", port: FreePort.allocate(), clientID: "gw-3", caFile: pki.bundlePath)
        c.certFile = pki.controllerCertPath
        c.keyFile = pki.controllerKeyPath
        let client = try MQTTClient(c)
        let recorder = MQTTEventRecorder(client.events)
        #expect(throws: MQTTError.self) { try client.publish(topic: "\(topicPrefix)/x", payload: []) }
        do {
            try client.publish(topic: "\(topicPrefix)/x", payload: [])
        } catch let error as MQTTError {
            #expect(error.code == "not_connected")
        }
        client.start()
        client.start()
        try await recorder.wait(for: "connectionFailed") { $0.isConnectionFailed }
        client.stop()
        client.stop()
        try await recorder.waitFinished(timeout: 5)
        #expect(!client.isConnected)
    }

    @Test("bad TLS files are refused at init with tls_setup_failed")
    func badFiles() throws {
        var c = MQTTConfiguration(host: "127.0.0.1", port: 1, clientID: "x", caFile: "/nonexistent/bundle.pem")
        c.certFile = "/nonexistent/c.pem"
        c.keyFile = "/nonexistent/c.key"
        do {
            _ = try MQTTClient(c)
            Issue.record("expected an error")
        } catch let error as MQTTError {
            #expect(error.code == "tls_setup_failed")
        }
    }

    @Test("an incoming payload above maxPayload is dropped and logged")
    func oversizedDropped() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let logged = LogSink()
        var config = f.operational(try f.pki.issueDevice("gw-4"))
        config.maxPayload = 100
        let device = try await RunningClient(
            config, subscriptions: ["\(topicPrefix)/dev/gw-4/cmd"], log: { logged.append($0) }
        ).connected()
        let controller = try await RunningClient(f.operational(f.pki.controller)).connected()
        try controller.client.publish(topic: "\(topicPrefix)/dev/gw-4/cmd", payload: [UInt8](repeating: 1, count: 101))
        try controller.client.publish(topic: "\(topicPrefix)/dev/gw-4/cmd", payload: [UInt8](repeating: 2, count: 100))
        let message = try await device.recorder.waitMessage(topic: "\(topicPrefix)/dev/gw-4/cmd")
        #expect(message.payload.count == 100)
        #expect(device.recorder.messages.count == 1)
        #expect(logged.lines.contains { $0.contains("dropped") && $0.contains("size=101") })
    }
}

final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}
