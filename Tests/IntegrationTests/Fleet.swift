import Foundation
import Shared
import TestSupport

/// A real Lanyard installation in a temporary directory: Mosquitto with the
/// deploy config, `lanyard-controller` and one `lanyard-agent` process per
/// device, driven through the built binaries and `lanyardctl` as an operator
/// would. On failure the directory is kept and its path printed.
final class Fleet: @unchecked Sendable {
    let directory: String
    let bin: String
    let broker: Broker
    let trustDomain = "it.lanyard.test"
    private(set) var controller: ChildProcess?
    // Internal rather than private: FleetFaults.swift starts agents with extra environment.
    var agents: [String: ChildProcess] = [:]
    let lock = NSLock()

    var controllerDirectory: String { "\(directory)/controller" }
    var pki: String { "\(controllerDirectory)/pki" }
    var bundle: String { "\(pki)/bundle.pem" }
    var crl: String { "\(controllerDirectory)/crl.pem" }
    var socket: String { "\(controllerDirectory)/admin.sock" }
    var controllerLogPath: String { "\(directory)/controller.log" }
    func agentDirectory(_ id: String) -> String { "\(directory)/agents/\(id)" }
    func agentLogPath(_ id: String) -> String { "\(directory)/agents/\(id).log" }
    func stateDirectory(_ id: String) -> String { "\(agentDirectory(id))/state" }

    /// Where `swift build` put the executables: next to the test bundle.
    static var binDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["LANYARD_BIN_DIR"] { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("lanyard-controller").path) { return url.path }
        }
        return Broker.repositoryRoot + "/.build/debug"
    }

    /// The HTTPS admin API's port, when the fleet was made with one.
    let apiPort: Int?

    /// - Parameter benchListener: the broker also gets lanyard-fleetsim's benchmark-only multiplexing listener.
    init(ttl: String, apiPort: Int? = nil, benchListener: Bool = false) throws {
        bin = Fleet.binDirectory
        self.apiPort = apiPort
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-it-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory + "/agents", withIntermediateDirectories: true)
        try TestProcess.check("\(bin)/lanyard-controller", ["init", "--dir", "\(directory)/controller", "--trust-domain", trustDomain, "--class-ttl", ttl]
                              + (apiPort.map { ["--api-port", String($0)] } ?? []))
        broker = try Broker.start(pkiDirectory: "\(directory)/controller/pki", crlFile: "\(directory)/controller/crl.pem",
                                  benchListener: benchListener)
        let configPath = "\(controllerDirectory)/controller.conf"
        var config = try String(contentsOfFile: configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "port = 8883", with: "port = \(broker.operationalPort)")
        config = config.replacingOccurrences(of: "# pid_file = /run/mosquitto/mosquitto.pid", with: "pid_file = \(broker.directory)/mosquitto.pid")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        try startController()
    }

    /// - Parameter environment: added to this process's (FleetFaults: a faked clock).
    func startController(environment: [String: String]? = nil) throws {
        let process = try ChildProcess("\(bin)/lanyard-controller", ["run", "--config", "\(controllerDirectory)/controller.conf"],
                                       outputPath: controllerLogPath,
                                       environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } })
        lock.withLock { controller = process }
        try waitSync("controller admin API and broker connection", timeout: 15) {
            (try? self.status())?["brokerConnected"] as? Bool == true
        }
    }

    func stopController() {
        let process = lock.withLock { () -> ChildProcess? in defer { controller = nil }; return controller }
        process?.terminate()
    }

    /// Runs `lanyardctl` against this fleet's controller.
    @discardableResult
    func ctl(_ args: [String]) throws -> TestProcess.Result {
        try TestProcess.run("\(bin)/lanyardctl", ["--socket", socket] + args, timeout: 30)
    }

    func ctlJSON(_ args: [String]) throws -> [String: Any] {
        let result = try ctl(["--json"] + args)
        guard result.succeeded, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestProcess.Failure(command: ["lanyardctl"] + args, result: result)
        }
        return object
    }

    func status() throws -> [String: Any] { try ctlJSON(["status"]) }

    /// Registers a device with all five owners, approves it, and writes its agent config and token.
    func register(_ id: String, port: Int? = nil) throws {
        try TestProcess.check("\(bin)/lanyardctl", ["--socket", socket, "device", "add", id, "--class", "default",
                                                    "--owner", "identity=pki", "--owner", "secarch=secarch", "--owner", "ops=ot-ops",
                                                    "--owner", "procurement=buyers", "--owner", "business=plant"])
        let approval = try TestProcess.check("\(bin)/lanyardctl", ["--socket", socket, "device", "approve", id])
        let dir = agentDirectory(id)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try approval.stdout.trimmed().write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: bundle, toPath: "\(dir)/bundle.pem")
        try """
        [agent]
        device_id = \(id)
        state_dir = state
        trust_bundle = bundle.pem
        token_file = token

        [broker]
        host = 127.0.0.1
        port = \(port ?? broker.operationalPort)
        bootstrap_port = \(broker.bootstrapPort)

        [renewal]
        request_timeout = 5s
        """.write(toFile: "\(dir)/agent.conf", atomically: true, encoding: .utf8)
    }

    func startAgent(_ id: String) throws {
        let process = try ChildProcess("\(bin)/lanyard-agent", ["run", "--config", "\(agentDirectory(id))/agent.conf"], outputPath: agentLogPath(id))
        lock.withLock { agents[id] = process }
    }

    func agent(_ id: String) -> ChildProcess? { lock.withLock { agents[id] } }

    func stopAgent(_ id: String) {
        let process = lock.withLock { agents.removeValue(forKey: id) }
        process?.terminate()
    }

    /// `lanyard-agent status --json` for a device.
    func agentStatus(_ id: String) throws -> [String: Any] {
        let result = try TestProcess.run("\(bin)/lanyard-agent", ["status", "--json", "--config", "\(agentDirectory(id))/agent.conf"])
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestProcess.Failure(command: ["lanyard-agent", "status"], result: result)
        }
        return object
    }

    func agentLog(_ id: String) -> String { (try? String(contentsOfFile: agentLogPath(id), encoding: .utf8)) ?? "" }
    func controllerLog() -> String { (try? String(contentsOfFile: controllerLogPath, encoding: .utf8)) ?? "" }

    /// Runs the independent paho-mqtt/PyJWT peer.
    func peer(_ args: [String]) throws -> (result: TestProcess.Result, json: [String: Any]) {
        let script = Broker.repositoryRoot + "/Tests/IntegrationTests/python/mqtt_peer.py"
        let result = try TestProcess.run("python3", [script] + args + ["--ca", bundle], timeout: 30)
        let lastLine = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any]) ?? [:]
        return (result, json)
    }

    func waitSync(_ what: String, timeout: Double, poll: Double = 0.2, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: poll)
        }
        throw WaitTimeout(what: what, directory: directory)
    }

    func wait(_ what: String, timeout: Double, poll: Double = 0.2, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            try await Task.sleep(for: .seconds(poll))
        }
        throw WaitTimeout(what: what, directory: directory)
    }

    struct WaitTimeout: Error, CustomStringConvertible {
        var what: String
        var directory: String
        var description: String { "timed out waiting for \(what) (logs kept in \(directory))" }
    }

    /// Stops everything; keeps the directory when the test failed.
    func shutdown(keep: Bool) {
        let all = lock.withLock { () -> [ChildProcess] in
            defer { agents = [:] }
            return Array(agents.values)
        }
        all.forEach { $0.terminate() }
        stopController()
        broker.stop()
        if keep {
            print("kept the fleet directory for inspection: \(directory)")
        } else {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
