import Foundation
import Shared
import TestSupport
import Testing

@Suite("Broker listeners, ACLs, CRL and reconnection", .serialized)
struct MQTTBrokerTests {
    @Test("bootstrap: an anonymous client X reaches the controller on enroll/X/req and gets enroll/X/res; Y cannot forge or read X's")
    func bootstrapFlow() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let controller = try await RunningClient(
            f.operational(f.pki.controller), subscriptions: ["\(topicPrefix)/enroll/+/req"]
        ).connected()
        let x = try await RunningClient(
            f.bootstrap(clientID: "dev-x"), subscriptions: ["\(topicPrefix)/enroll/dev-x/res"]
        ).connected()
        let y = try await RunningClient(
            f.bootstrap(clientID: "dev-y"), subscriptions: ["\(topicPrefix)/enroll/dev-x/res"]
        ).connected()

        try y.client.publish(topic: "\(topicPrefix)/enroll/dev-x/req", payload: Array("forged".utf8))
        try x.client.publish(topic: "\(topicPrefix)/enroll/dev-x/req", payload: Array("csr".utf8))
        let request = try await controller.recorder.waitMessage(topic: "\(topicPrefix)/enroll/dev-x/req")
        #expect(request.payload == Array("csr".utf8))

        try controller.client.publish(topic: "\(topicPrefix)/enroll/dev-x/res", payload: Array("chain".utf8))
        let reply = try await x.recorder.waitMessage(topic: "\(topicPrefix)/enroll/dev-x/res")
        #expect(reply.payload == Array("chain".utf8))

        // Sentinel: Y's own request goes through, so its forged one (sent first) was dropped.
        try y.client.publish(topic: "\(topicPrefix)/enroll/dev-y/req", payload: Array("y".utf8))
        _ = try await controller.recorder.waitMessage(topic: "\(topicPrefix)/enroll/dev-y/req")
        try controller.client.publish(topic: "\(topicPrefix)/enroll/dev-y/res", payload: Array("not for x".utf8))
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(controller.recorder.messages.filter { $0.payload == Array("forged".utf8) }.isEmpty)
        #expect(y.recorder.messages.isEmpty)  // reading X's reply topic is denied
        #expect(x.recorder.messages.count == 1)
    }

    @Test("a device cannot publish on another device's topics nor read them")
    func crossDeviceDenied() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let controller = try await RunningClient(
            f.operational(f.pki.controller), subscriptions: ["\(topicPrefix)/dev/+/state"]
        ).connected()
        let a = try await RunningClient(
            f.operational(try f.pki.issueDevice("dev-a")),
            subscriptions: ["\(topicPrefix)/dev/dev-b/cmd", "\(topicPrefix)/#"]
        ).connected()
        try a.client.publish(topic: "\(topicPrefix)/dev/dev-b/state", payload: Array("spoof".utf8))
        try a.client.publish(topic: "\(topicPrefix)/dev/dev-a/state", payload: Array("mine".utf8))
        _ = try await controller.recorder.waitMessage(topic: "\(topicPrefix)/dev/dev-a/state")
        try controller.client.publish(topic: "\(topicPrefix)/dev/dev-b/cmd", payload: Array("for b".utf8))
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(controller.recorder.messages.map(\.topic) == ["\(topicPrefix)/dev/dev-a/state"])
        #expect(a.recorder.messages.isEmpty)
    }

    @Test("a certificate from an untrusted CA never connects, and the client keeps retrying")
    func untrustedCertificateRefused() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        var config = f.operational(try f.pki.issueUntrustedDevice("rogue"))
        config.reconnectMaxDelay = 1
        let rogue = try RunningClient(config)
        try await rogue.recorder.wait(for: "three failed attempts", count: 3, timeout: 15) { $0.isConnectionFailed }
        #expect(!rogue.client.isConnected)
        #expect(rogue.recorder.events.contains { "\($0)".contains("unknown ca") })
        #expect(rogue.recorder.count { $0.isConnected } == 0)
        #expect(f.broker.isRunning)
        rogue.client.stop()
    }

    @Test("a client started while the broker is down connects by itself once it comes up")
    func connectsWhenBrokerComesUp() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let op = FreePort.allocate()
        var boot = FreePort.allocate()
        while boot == op { boot = FreePort.allocate() }
        var config = MQTTConfiguration(host: "127.0.0.1", port: op, clientID: "gw-9", caFile: pki.bundlePath)
        let device = try pki.issueDevice("gw-9")
        config.certFile = device.certPath
        config.keyFile = device.keyPath
        config.reconnectMaxDelay = 1
        let client = try RunningClient(config, subscriptions: ["\(topicPrefix)/dev/gw-9/cmd"])
        try await client.recorder.wait(for: "failed attempts", count: 2) { $0.isConnectionFailed }
        #expect(!client.client.isConnected)

        let broker = try Broker.start(pki: pki, operationalPort: op, bootstrapPort: boot)
        defer { broker.stop() }
        try await client.recorder.waitConnected(timeout: 10)
        #expect(client.client.isConnected)

        // And again after a broker restart: .disconnected, then .connected.
        broker.stop()
        try await client.recorder.wait(for: ".disconnected") { $0.isDisconnected }
        #expect(!client.client.isConnected)
        let again = try Broker.start(pki: pki, operationalPort: op, bootstrapPort: boot)
        defer { again.stop() }
        try await client.recorder.waitConnected(count: 2, timeout: 10)
        client.client.stop()
    }

    @Test("reconnectNow reconnects and re-reads the certificate files (symlink swap)")
    func reconnectNowRereadsFiles() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let good = try f.pki.issueDevice("gw-5")
        let untrusted = try f.pki.issueUntrustedDevice("gw-5")
        let store = f.pki.directory + "/gw-5-store"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        func point(to credential: TestCredential) throws {
            let gen = store + "/gen-\(UUID().uuidString.prefix(6))"
            try FileManager.default.createDirectory(atPath: gen, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: credential.certPath, toPath: gen + "/cert.pem")
            try FileManager.default.copyItem(atPath: credential.keyPath, toPath: gen + "/key.pem")
            try? FileManager.default.removeItem(atPath: store + "/next")
            try FileManager.default.createSymbolicLink(atPath: store + "/next", withDestinationPath: gen)
            #expect(rename(store + "/next", store + "/current") == 0)
        }
        try point(to: good)
        var config = f.operational(good)
        config.certFile = store + "/current/cert.pem"
        config.keyFile = store + "/current/key.pem"
        let device = try await RunningClient(config).connected()

        device.client.reconnectNow()
        try await device.recorder.waitConnected(count: 2)
        #expect(device.recorder.count { $0.isDisconnected } == 1)

        try point(to: untrusted)
        device.client.reconnectNow()
        try await device.recorder.wait(for: "failure with the swapped-in cert") { $0.isConnectionFailed }
        #expect(!device.client.isConnected)

        try point(to: good)
        device.client.reconnectNow()
        try await device.recorder.waitConnected(count: 3)
        device.client.stop()
    }

    @Test("after revoking a device in the CRL and SIGHUP, its next connection fails while others connect")
    func crlRevocation() async throws {
        let f = try MQTTFixture()
        defer { f.tearDown() }
        let revoked = try f.pki.issueDevice("gw-6")
        let other = try f.pki.issueDevice("gw-7")
        let first = try await RunningClient(f.operational(revoked)).connected()
        first.client.stop()

        try f.pki.revoke(revoked)
        let crl = try TestProcess.check("openssl", ["crl", "-in", f.pki.crlPath, "-noout", "-text"]).stdout
        #expect(crl.contains(revoked.serial))
        try f.broker.reload()

        var config = f.operational(revoked)
        config.reconnectMaxDelay = 1
        let again = try RunningClient(config)
        try await again.recorder.wait(for: "refused attempts", count: 2, timeout: 15) { $0.isConnectionFailed }
        #expect(again.recorder.count { $0.isConnected } == 0)
        #expect(again.recorder.events.contains { "\($0)".contains("certificate revoked") })
        again.client.stop()

        let fine = try await RunningClient(f.operational(other)).connected()
        #expect(fine.client.isConnected)
        fine.client.stop()
    }
}
