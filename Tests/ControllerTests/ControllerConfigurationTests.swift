import Foundation
import Testing

@testable import Controller
import Shared
import TestSupport

@Suite("ControllerConfiguration: loading and errors that name file and line")
struct ControllerConfigurationTests {
    /// Writes `text` to a fresh file and loads it; returns the path and the ConfigError, if any.
    func load(_ text: String) throws -> (path: String, result: Result<ControllerConfiguration, ConfigError>) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-cc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("controller.conf").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: dir) }
        do { return (path, .success(try ControllerConfiguration.load(path: path))) } catch { return (path, .failure(error)) }
    }

    func expectError(_ text: String, line: Int, mentioning words: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (path, result) = try load(text)
        guard case .failure(let error) = result else {
            Issue.record("configuration loaded but should have failed", sourceLocation: sourceLocation)
            return
        }
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("\(path):\(line): "), "\(error)", sourceLocation: sourceLocation)
        for word in words { #expect(error.message.contains(word), "\(error.message) lacks \(word)", sourceLocation: sourceLocation) }
    }

    @Test("the fixture's configuration loads with its values, relative paths made absolute")
    func loadsValues() throws {
        let (path, result) = try load(ControllerFixture.configText(directory: "/nowhere"))
        let c = try result.get()
        let dir = (path as NSString).deletingLastPathComponent
        #expect(c.trustDomain == "test.lanyard")
        #expect(c.pkiDirectory == dir + "/pki")
        #expect(c.databasePath == dir + "/lanyard.db")
        #expect(c.crlFile == dir + "/crl.pem")
        #expect(c.tokenTTL == .seconds(3600))
        #expect(c.backdate == .seconds(300))
        #expect(c.crlValidity == .seconds(7 * 86400))
        #expect(c.crlRefreshBefore == .seconds(3 * 86400))
        #expect(c.brokerPort == 8883)
        #expect(Set(c.classes.keys) == ["sensor", "fixed", "lite", "roamer"])
        #expect(c.classes["sensor"]?.ttl == .seconds(86400))
        #expect(c.classes["sensor"]?.rotateKeys == true)
        #expect(c.classes["sensor"]?.requiredOwners == OwnerRole.allCases)
        #expect(c.classes["fixed"]?.rotateKeys == false)
        #expect(c.classes["fixed"]?.requiredOwners == [.ops])
        #expect(c.classes["lite"]?.keyAlgorithms == ["P-256"])
        // Re-enrollment after expiry: off unless a class says so; the window defaults to 7 d.
        #expect(c.classes["sensor"]?.reenrollAfterExpiry == false)
        #expect(c.classes["sensor"]?.reenrollWindow == .seconds(7 * 86400))
        #expect(c.classes["roamer"]?.reenrollAfterExpiry == true)
        #expect(c.classes["roamer"]?.reenrollWindow == .seconds(2 * 86400))
    }

    @Test("the sample written by init loads")
    func sampleLoads() throws {
        let (_, result) = try load(ControllerConfiguration.sample(trustDomain: "plant.example", brokerPort: 8883, classTTL: "12h"))
        let c = try result.get()
        #expect(c.classes["default"]?.ttl == .seconds(12 * 3600))
        #expect(c.backdate == .seconds(300))
    }

    @Test("an unknown key is an error naming file and line")
    func unknownKey() throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard
            # comment

            tokn_ttl = 1h
            """, line: 5, mentioning: ["tokn_ttl", "unknown"])
    }

    @Test("an unknown key in a class section is an error naming file and line")
    func unknownClassKey() throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard
            [class.sensor]
            ttl = 1d
            rotate_key = true
            """, line: 5, mentioning: ["rotate_key"])
    }

    @Test("an unknown section is an error naming its line")
    func unknownSection() throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard
            [brokr]
            host = x
            """, line: 3, mentioning: ["brokr"])
    }

    @Test("a bad duration is an error naming file and line", arguments: ["1 hour", "-5m", "5x", "h", "1.5h"])
    func badDuration(_ value: String) throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard
            token_ttl = \(value)
            """, line: 3, mentioning: ["token_ttl"])
    }

    @Test("a duration out of range is an error naming its line")
    func durationOutOfRange() throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard

            [class.sensor]
            max_ttl = 1d
            ttl = 2d
            """, line: 6, mentioning: ["ttl"])
    }

    @Test("an unknown owner role is an error naming file and line")
    func unknownRole() throws {
        try expectError("""
            [controller]
            trust_domain = test.lanyard

            [class.sensor]
            required_owners = ops, janitor
            """, line: 5, mentioning: ["janitor"])
    }

    @Test("a bad port, boolean or trust domain is an error naming its line")
    func otherBadValues() throws {
        try expectError("[controller]\ntrust_domain = test.lanyard\n[broker]\nport = 70000\n", line: 4, mentioning: ["port"])
        try expectError("[controller]\ntrust_domain = test.lanyard\n[class.a]\nrotate_keys = maybe\n", line: 4, mentioning: ["rotate_keys"])
        try expectError("[controller]\n\ntrust_domain = Test/Lanyard\n", line: 3, mentioning: ["trust_domain"])
        try expectError("[controller]\ntrust_domain = test.lanyard\n[class.Bad_Name]\n", line: 3, mentioning: ["Bad_Name"])
    }

    @Test("a missing trust_domain is an error naming the file")
    func missingTrustDomain() throws {
        let (path, result) = try load("[controller]\n")
        guard case .failure(let error) = result else { Issue.record("loaded without trust_domain"); return }
        #expect(error.path == path)
        #expect(error.message.contains("trust_domain"))
    }
}

@Suite("The shipped sample configuration")
struct DeployedControllerConfigurationTests {
    @Test("deploy/controller/controller.conf loads: every option it documents is accepted, its event template parsed")
    func deployedSampleLoads() throws {
        let c = try ControllerConfiguration.load(path: Broker.repositoryRoot + "/deploy/controller/controller.conf")
        #expect(c.classes["default"]?.reenrollAfterExpiry == false && c.classes["default"]?.reenrollWindow == .seconds(7 * 86400))
        let template = try #require(c.eventTemplates["ca.rotated"])
        #expect(template.rollout.maxPerMinute == 200 && template.rollout.canary == 5 && template.rollout.abortFailurePercent == 10
                && template.rollout.window == 3 * 86400)
    }
}
