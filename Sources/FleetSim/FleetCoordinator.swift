import Foundation
import Shared

/// Runs a fleet larger than one process can hold as several worker
/// processes (`lanyard-fleetsim run --worker-dir ...`), each simulating a
/// range of devices, stepping through the phases together.
///
/// Why processes: libmosquitto keeps three descriptors per handle (its
/// socket and an internal socket pair), and RLIMIT_NOFILE's hard limit
/// (20,000 on this machine, not raisable in the container) caps one process
/// at about 6,600 connections.
///
/// Phase barrier through files in a private directory: a worker creates
/// `ready-<worker>-<phase>` and waits for `go-<phase>`; the coordinator
/// creates `go-<phase>` once every worker is ready (or gone). A phase's wall
/// time runs from its `go` to every worker reaching the next barrier.
package final class FleetCoordinator {
    private let configuration: SimulationConfiguration
    private let processes: Int
    private let executable: String
    private let log: (String) -> Void

    package init(_ configuration: SimulationConfiguration, processes: Int, executable: String, log: @escaping (String) -> Void) throws {
        try configuration.validate()
        guard (2...64).contains(processes), processes <= configuration.devices else {
            throw WireError(.badRequest, "--processes must be 2...64 and at most --devices")
        }
        self.configuration = configuration
        self.processes = processes
        self.executable = executable
        self.log = log
    }

    /// Processes needed so that each stays under its descriptor limit.
    package static func processesNeeded(_ c: SimulationConfiguration) -> Int {
        if c.multiplex > 0 { return 1 }
        let limit = raiseFileLimit()
        let perProcess = max(1, (limit - 64) / 3)
        return max(1, (c.devices + perProcess - 1) / perProcess)
    }

    /// The barrier a worker uses (`--worker-dir`, `--worker-index`).
    package static func workerBarrier(directory: String, index: Int) -> (String) -> Void {
        { label in
            _ = FileManager.default.createFile(atPath: "\(directory)/ready-\(index)-\(label)", contents: nil)
            while !FileManager.default.fileExists(atPath: "\(directory)/go-\(label)") {
                usleep(2000)
            }
        }
    }

    package func run() throws -> SimulationSummary {
        let c = configuration
        let admin = AdminClient(socketPath: c.adminSocket)
        let before = try admin.call(.status, Empty(), as: ControllerStatus.self)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-fleetsim-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // Spawn the workers: contiguous device ranges; only worker 0 revokes.
        var pids: [pid_t] = []
        var exited: [Bool] = []
        let share = c.devices / processes
        for i in 0..<processes {
            let count = i == processes - 1 ? c.devices - share * (processes - 1) : share
            let arguments = workerArguments(index: i, devices: count, offset: c.offset + share * i, directory: directory)
            switch CleanSpawn.spawn(executable, arguments, environment: ProcessInfo.processInfo.environment.map { "\($0)=\($1)" },
                                    stdoutPath: "\(directory)/worker-\(i).out", stderrPath: "\(directory)/worker-\(i).log") {
            case .success(let pid): pids.append(pid); exited.append(false)
            case .failure(let failure): throw WireError(.internal, "cannot start worker \(i): \(failure)")
            }
        }
        defer {
            for (i, pid) in pids.enumerated() where !exited[i] {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        func reap() {
            for (i, pid) in pids.enumerated() where !exited[i] {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { exited[i] = true }
            }
        }
        var lastProgress = monotonicNanoseconds()
        func waitForAll(_ label: String) {
            while true {
                reap()
                let waiting = (0..<processes).filter { !exited[$0] && !FileManager.default.fileExists(atPath: "\(directory)/ready-\($0)-\(label)") }
                if waiting.isEmpty { return }
                let now = monotonicNanoseconds()
                if c.progress, now - lastProgress > 2_000_000_000 {
                    lastProgress = now
                    for i in 0..<processes {
                        let text = (try? String(contentsOfFile: "\(directory)/worker-\(i).log", encoding: .utf8)) ?? ""
                        if let line = text.split(separator: "\n").last { log("[worker \(i)] \(line)") }
                    }
                }
                usleep(2000)
            }
        }

        var summary = SimulationSummary(configuration: c, machine: machineDescription())
        summary.processes = processes
        summary.register.issuedBefore = before.issued
        let measured = ["enroll"] + c.renewalRounds.indices.map { "renew-\($0 + 1)" }
        let concurrency = [c.enrollConcurrency] + c.renewalRounds
        var spans: [String: (seconds: Double, controller: (ProcessUsage?, ProcessUsage?), broker: (ProcessUsage?, ProcessUsage?))] = [:]
        var current: (label: String, start: UInt64, controller: ProcessUsage?, broker: ProcessUsage?)?
        for label in measured + ["revoke", "hold", "end"] {
            waitForAll(label)
            if label == "hold", let ready = c.readyFile { _ = FileManager.default.createFile(atPath: ready, contents: nil) }
            let now = monotonicNanoseconds()
            if let open = current {
                spans[open.label] = (Double(now - open.start) / 1e9, (open.controller, c.controllerPID.flatMap(ProcessUsage.sample)),
                                     (open.broker, c.brokerPID.flatMap(ProcessUsage.sample)))
                log(String(format: "%@: every worker done after %.2f s", open.label, Double(now - open.start) / 1e9))
                current = nil
            }
            if measured.contains(label) {
                current = (label, monotonicNanoseconds(), c.controllerPID.flatMap(ProcessUsage.sample), c.brokerPID.flatMap(ProcessUsage.sample))
            }
            _ = FileManager.default.createFile(atPath: "\(directory)/go-\(label)", contents: nil)
        }
        while exited.contains(false) {
            reap()
            usleep(5000)
        }

        // Merge the workers' summaries.
        var workers: [SimulationSummary] = []
        for i in 0..<processes {
            guard let data = FileManager.default.contents(atPath: "\(directory)/worker-\(i).json"),
                let worker = try? JSONDecoder().decode(SimulationSummary.self, from: data)
            else {
                let tail = ((try? String(contentsOfFile: "\(directory)/worker-\(i).log", encoding: .utf8)) ?? "").suffix(2000)
                throw WireError(.internal, "worker \(i) left no summary; its log ends with:\n\(tail)")
            }
            workers.append(worker)
        }
        let registered = workers.compactMap(\.registration)
        if !registered.isEmpty {
            let seconds = registered.map(\.seconds).max() ?? 0
            summary.registration = RegistrationFigures(devices: c.devices, seconds: seconds, perSecond: Double(c.devices) / seconds)
        }
        for (label, conc) in zip(measured, concurrency) {
            let parts = workers.compactMap { $0.phases.first { $0.name == label } }
            guard !parts.isEmpty, let span = spans[label] else { break }
            let certificates = parts.map(\.certificates).reduce(0, +)
            let samples = workers.flatMap { $0.latencySamples?[label] ?? [] }
            var figures = PhaseFigures(name: label, concurrency: conc, certificates: certificates, seconds: span.seconds,
                                       perSecond: Double(certificates) / span.seconds,
                                       complete: parts.count == processes && parts.allSatisfy(\.complete))
            figures.p50Ms = Percentile.of(samples, 50).map { $0 * 1000 }
            figures.p99Ms = Percentile.of(samples, 99).map { $0 * 1000 }
            figures.maxMs = samples.max().map { $0 * 1000 }
            figures.simulatorCPUSeconds = parts.compactMap(\.simulatorCPUSeconds).reduce(0, +)
            if let b = span.controller.0, let a = span.controller.1 {
                figures.controllerCPUSeconds = a.cpuSeconds - b.cpuSeconds
                if certificates > 0 { figures.controllerCPUMsPerCertificate = (a.cpuSeconds - b.cpuSeconds) * 1000 / Double(certificates) }
                figures.controllerRSSKiB = a.rssKiB
            }
            if let b = span.broker.0, let a = span.broker.1 {
                figures.brokerCPUSeconds = a.cpuSeconds - b.cpuSeconds
                figures.brokerRSSKiB = a.rssKiB
            }
            summary.phases.append(figures)
        }
        summary.revocations = workers.first?.revocations ?? []
        for worker in workers {
            for (k, v) in worker.counters { summary.counters[k, default: 0] += v }
            for (k, v) in worker.errors { summary.errors[k, default: 0] += v }
            summary.errorSamples += worker.errorSamples.prefix(max(0, 10 - summary.errorSamples.count))
        }
        summary.register.certificatesReceived = summary.counters["certificatesReceived"]
        summary.register.issuedAfter = (try? admin.call(.status, Empty(), as: ControllerStatus.self))?.issued
        summary.complete = workers.allSatisfy(\.complete) && summary.phases.count == measured.count
        return summary
    }

    private func workerArguments(index: Int, devices: Int, offset: Int, directory: String) -> [String] {
        let c = configuration
        var arguments = [
            "run", "--worker-dir", directory, "--worker-index", String(index), "--devices", String(devices), "--offset", String(offset),
            "--prefix", c.prefix, "--host", c.host, "--port", String(c.operationalPort), "--bootstrap-port", String(c.bootstrapPort),
            "--bundle", c.bundlePath, "--socket", c.adminSocket, "--threads", String(c.threads),
            "--enroll-concurrency", String(max(1, c.enrollConcurrency / processes)),
            "--rounds", c.renewalRounds.isEmpty ? "none" : c.renewalRounds.map { String(max(1, $0 / processes)) }.joined(separator: ","),
            "--connect-concurrency", String(max(1, c.connectConcurrency / processes)),
            "--revoke", String(index == 0 ? c.revocations : 0), "--hold", String(c.holdSeconds),
            "--request-timeout", String(c.requestTimeout), "--phase-timeout", String(c.phaseTimeout),
            "--json", "\(directory)/worker-\(index).json",
        ]
        if c.tcpNoDelay { arguments.append("--tcp-nodelay") }
        if let site = c.site { arguments += ["--site", site] }
        if let tag = c.tag { arguments += ["--tag", tag, "--tagged", String(c.tagged)] }
        if let path = c.eventLogPath { arguments += ["--event-log", path] }
        if let path = c.stopFile { arguments += ["--stop-file", path] }
        if c.multiplex > 0 {
            arguments += ["--multiplex", String(max(1, c.multiplex / processes)), "--mux-port", String(c.multiplexPort)]
        }
        return arguments
    }
}
