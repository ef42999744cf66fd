import Foundation
import Testing

@testable import Agent
import Shared

@Suite("AgentConfiguration: loading and errors with line numbers")
struct AgentConfigurationTests {
    func load(_ text: String) throws -> (path: String, result: Result<AgentConfiguration, ConfigError>) {
        let dir = try TempDirectory()
        let path = try dir.write("agent.conf", text)
        do { return (path, .success(try AgentConfiguration.load(path: path))) } catch { return (path, .failure(error)) }
    }

    func expectError(_ text: String, line: Int, mentioning word: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (path, result) = try load(text)
        guard case .failure(let error) = result else {
            Issue.record("configuration loaded but should have failed", sourceLocation: sourceLocation)
            return
        }
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("\(path):\(line): "), "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(word), "\(error.message)", sourceLocation: sourceLocation)
    }

    @Test("a full configuration loads; relative paths are relative to the file")
    func loads() throws {
        let (path, result) = try load("""
            [agent]
            device_id = gw-17.plant-a
            state_dir = state
            trust_bundle = /etc/lanyard/bundle.pem
            token_file = token

            [broker]
            host = broker.example
            port = 18883
            bootstrap_port = 18884
            keepalive = 30

            [renewal]
            renew_at = 0.5
            jitter = 0.1
            request_timeout = 30s
            max_retry_delay = 10m
            """)
        let c = try result.get()
        let dir = (path as NSString).deletingLastPathComponent
        #expect(c.deviceID.rawValue == "gw-17.plant-a")
        #expect(c.stateDirectory == dir + "/state")
        #expect(c.trustBundle == "/etc/lanyard/bundle.pem")
        #expect(c.tokenFile == dir + "/token")
        #expect(c.brokerHost == "broker.example")
        #expect(c.operationalPort == 18883)
        #expect(c.bootstrapPort == 18884)
        #expect(c.keepAlive == 30)
        #expect(c.renewAt == 0.5)
        #expect(c.renewJitter == 0.1)
        #expect(c.requestTimeout == .seconds(30))
        #expect(c.maxRetryDelay == .seconds(600))
    }

    @Test("defaults apply when only the required keys are given")
    func defaults() throws {
        let c = try load("[agent]\ndevice_id = gw-1\ntrust_bundle = bundle.pem\n").result.get()
        #expect(c.operationalPort == 8883)
        #expect(c.bootstrapPort == 8884)
        #expect(c.stateDirectory == "/var/lib/lanyard-agent")
        #expect(c.tokenFile == nil)
        #expect(c.renewJitter == 0.05)
    }

    @Test("an unknown key is an error with its line")
    func unknownKey() throws {
        try expectError("[agent]\ndevice_id = gw-1\ntrust_bundle = b.pem\n\n[broker]\nprot = 8883\n", line: 6, mentioning: "prot")
    }

    @Test("a bad port is an error with its line", arguments: ["0", "65536", "-1", "eighty", "88.3"])
    func badPort(_ value: String) throws {
        try expectError("[agent]\ndevice_id = gw-1\ntrust_bundle = b.pem\n[broker]\nport = \(value)\n", line: 5, mentioning: "port")
    }

    @Test("a malformed or reserved device id is an error with its line", arguments: ["GW-1", "gw/1", "gw+", "-gw", "lanyard-controller", "\"\""])
    func badDeviceID(_ value: String) throws {
        try expectError("# agent\n[agent]\ntrust_bundle = b.pem\ndevice_id = \(value)\n", line: 4, mentioning: "device_id")
    }

    @Test("out-of-range renewal settings are errors with their line")
    func badRenewal() throws {
        try expectError("[agent]\ndevice_id = gw-1\ntrust_bundle = b.pem\n[renewal]\njitter = 0.5\n", line: 5, mentioning: "jitter")
        try expectError("[agent]\ndevice_id = gw-1\ntrust_bundle = b.pem\n[renewal]\nrequest_timeout = soon\n", line: 5, mentioning: "request_timeout")
    }

    @Test("a missing device_id or trust_bundle is an error naming the key")
    func missingRequired() throws {
        let (_, r1) = try load("[agent]\ntrust_bundle = b.pem\n")
        guard case .failure(let e1) = r1 else { Issue.record("loaded without device_id"); return }
        #expect(e1.message.contains("device_id"))
        let (_, r2) = try load("[agent]\ndevice_id = gw-1\n")
        guard case .failure(let e2) = r2 else { Issue.record("loaded without trust_bundle"); return }
        #expect(e2.message.contains("trust_bundle"))
    }
}
