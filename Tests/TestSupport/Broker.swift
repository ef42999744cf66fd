import Foundation

/// A real Mosquitto started from the product's `deploy/mosquitto` config
/// (rendered by `render.sh`) on free loopback ports.
///
/// `@unchecked Sendable`: mutable state (the process) is guarded by `lock`.
package final class Broker: @unchecked Sendable {
    package struct StartError: Error, CustomStringConvertible {
        package var message: String
        package var log: String
        package var description: String { "\(message)\n--- broker log ---\n\(log)" }
    }

    package let operationalPort: Int
    package let bootstrapPort: Int
    /// The benchmark-only multiplexing listener (bench/broker/), when asked for.
    package let benchPort: Int?
    /// Directory holding the rendered mosquitto.conf, ACLs and logs.
    package let directory: String
    package var configPath: String { directory + "/mosquitto.conf" }
    package var logPath: String { directory + "/mosquitto.log" }
    private var consolePath: String { directory + "/console.log" }

    private let lock = NSLock()
    private var process: ChildProcess?

    package var pid: Int32 {
        lock.withLock { process?.pid ?? 0 }
    }

    package var isRunning: Bool {
        lock.withLock { process?.isRunning ?? false }
    }

    /// The repository root, found from this file's location.
    package static var repositoryRoot: String {
        if let root = ProcessInfo.processInfo.environment["LANYARD_REPO_ROOT"] { return root }
        return URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Renders the config for `pki` and starts Mosquitto. Ports default to
    /// free ones (retried if another process grabs one first).
    package static func start(
        pki: TestPKI, crl: String? = nil, operationalPort: Int? = nil, bootstrapPort: Int? = nil
    ) throws -> Broker {
        try start(
            pkiDirectory: pki.directory, crlFile: crl ?? pki.crlPath, operationalPort: operationalPort,
            bootstrapPort: bootstrapPort)
    }

    /// - Parameter benchListener: also add lanyard-fleetsim's benchmark-only
    ///   multiplexing listener (`bench/broker/add-bench-listener.sh`) on a free port.
    package static func start(
        pkiDirectory: String, crlFile: String, operationalPort: Int? = nil, bootstrapPort: Int? = nil, benchListener: Bool = false
    ) throws -> Broker {
        var lastError: Error?
        let attempts = (operationalPort == nil || bootstrapPort == nil) ? 3 : 1
        for _ in 0..<attempts {
            let op = operationalPort ?? FreePort.allocate()
            var boot = bootstrapPort ?? FreePort.allocate()
            while boot == op { boot = FreePort.allocate() }
            var bench: Int?
            if benchListener {
                bench = FreePort.allocate()
                while bench == op || bench == boot { bench = FreePort.allocate() }
            }
            let broker = try Broker(pkiDirectory: pkiDirectory, crlFile: crlFile, operationalPort: op, bootstrapPort: boot, benchPort: bench)
            do {
                try broker.launch()
                return broker
            } catch {
                broker.stop()
                lastError = error
                if let e = error as? StartError, e.log.contains("Address already in use") { continue }
                throw error
            }
        }
        throw lastError!
    }

    private init(pkiDirectory: String, crlFile: String, operationalPort: Int, bootstrapPort: Int, benchPort: Int? = nil) throws {
        self.operationalPort = operationalPort
        self.bootstrapPort = bootstrapPort
        self.benchPort = benchPort
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lanyard-broker-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try TestProcess.check(Self.repositoryRoot + "/deploy/mosquitto/render.sh", [
            "--pki", pkiDirectory, "--crl", crlFile,
            "--operational-port", String(operationalPort), "--bootstrap-port", String(bootstrapPort),
            "--out", directory, "--bind", "127.0.0.1", "--user", NSUserName(),
        ])
        if let benchPort {
            try TestProcess.check(Self.repositoryRoot + "/bench/broker/add-bench-listener.sh", [directory, pkiDirectory, String(benchPort)])
        }
    }

    private func launch() throws {
        let process = try ChildProcess("/usr/sbin/mosquitto", ["-c", configPath], outputPath: consolePath)
        lock.withLock { self.process = process }

        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning {
                throw StartError(message: "mosquitto exited with status \(process.terminationStatus ?? -1)", log: log())
            }
            if FreePort.isAccepting(operationalPort) && FreePort.isAccepting(bootstrapPort) && benchPort.map(FreePort.isAccepting) ?? true { return }
            usleep(20_000)
        }
        throw StartError(message: "mosquitto did not open ports \(operationalPort) and \(bootstrapPort) in 10 s", log: log())
    }

    /// The broker's log file and console output.
    package func log() -> String {
        let file = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let console = (try? String(contentsOfFile: consolePath, encoding: .utf8)) ?? ""
        return file + (console.isEmpty ? "" : "\n--- console ---\n" + console)
    }

    /// SIGHUP (re-reads the config, ACL files and CRL); waits until the
    /// broker logs the reload.
    package func reload(timeout: Double = 5) throws {
        let before = reloadCount()
        guard pid > 0, kill(pid, SIGHUP) == 0 else {
            throw StartError(message: "broker not running", log: log())
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if reloadCount() > before { return }
            usleep(20_000)
        }
        throw StartError(message: "broker did not log a reload within \(timeout) s", log: log())
    }

    private func reloadCount() -> Int {
        log().components(separatedBy: "Reloading config").count - 1
    }

    /// SIGTERM and wait (SIGKILL after 5 s). Idempotent.
    package func stop() {
        let process: ChildProcess? = lock.withLock {
            defer { self.process = nil }
            return self.process
        }
        process?.terminate()
    }

    deinit {
        stop()
    }
}
