import Foundation
import TestSupport

/// Fault injection for the end-to-end harness: agents started with extra
/// environment (crash points, libfaketime) and per-device config overrides.
/// Kept apart from Fleet.swift so the plain story stays plain.
extension Fleet {
    /// libfaketime from the Debian package `libfaketime` (installed by
    /// `scripts/install-deps.sh --test`).
    static let fakeTimeLibrary = ["x86_64", "aarch64"].map { "/usr/lib/\($0)-linux-gnu/faketime/libfaketime.so.1" }
        .first { FileManager.default.fileExists(atPath: $0) } ?? "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

    /// Starts an agent with `extra` added to this process's environment.
    func startAgent(_ id: String, environment extra: [String: String]) throws {
        let environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let process = try ChildProcess("\(bin)/lanyard-agent", ["run", "--config", "\(agentDirectory(id))/agent.conf"],
                                       outputPath: agentLogPath(id), environment: environment)
        lock.withLock { agents[id] = process }
    }

    /// Environment that runs a process on a shifted wall clock: `spec` is a
    /// libfaketime offset such as "-5m" or "+1d". With `file`, the offset is
    /// read from that file on every call instead, so a test can jump the
    /// clock of a running process by rewriting it.
    static func fakeTime(_ spec: String? = nil, file: String? = nil) -> [String: String] {
        // A real clock step moves CLOCK_REALTIME only; keep the monotonic clock real too.
        var env = ["LD_PRELOAD": fakeTimeLibrary, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                   // Without it, libfaketime creates shared memory at load and
                   // setenv()s FAKETIME_SHARED, which moves `environ`; Swift on
                   // Linux finds argv next to the original environ, so the agent
                   // would see no arguments. Objects that do not exist make
                   // libfaketime go without (it needs them only to share a
                   // start time between processes).
                   "FAKETIME_SHARED": "/lanyard-no-sem /lanyard-no-shm"]
        if let spec { env["FAKETIME"] = spec }
        if let file {
            env["FAKETIME_TIMESTAMP_FILE"] = file
            env["FAKETIME_NO_CACHE"] = "1"
        }
        return env
    }

    /// Sets `key = value` in a section of a registered device's agent.conf,
    /// replacing the key's line when it is already set (the section must exist).
    func setAgentOption(_ id: String, section: String, _ key: String, _ value: String) throws {
        let path = "\(agentDirectory(id))/agent.conf"
        var lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        if let i = lines.firstIndex(where: { $0.hasPrefix("\(key) =") || $0.hasPrefix("\(key)=") }) {
            lines[i] = "\(key) = \(value)"
        } else if let i = lines.firstIndex(of: "[\(section)]") {
            lines.insert("\(key) = \(value)", at: i + 1)
        } else {
            throw SampleProblem("no [\(section)] in \(path)")
        }
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// `lanyard-agent status --json` run with extra environment (the device's
    /// faked clock: status judges time left on the device's clock too).
    func agentStatus(_ id: String, environment: [String: String]) throws -> [String: Any] {
        let result = try TestProcess.run("\(bin)/lanyard-agent", ["status", "--json", "--config", "\(agentDirectory(id))/agent.conf"],
                                         environment: environment)
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestProcess.Failure(command: ["lanyard-agent", "status"], result: result)
        }
        return object.merging(["exitStatus": Int(result.exitCode)]) { $1 }
    }

    /// Seconds of the day (UTC, from the log's `HH:MM:SS.mmm` prefix) of the
    /// agent's log lines containing `text`.
    func agentLogTimes(_ id: String, containing text: String) -> [Double] {
        agentLog(id).split(separator: "\n").filter { $0.contains(text) }.compactMap { line in
            let parts = line.prefix(12).split(separator: ":").compactMap { Double($0) }
            return parts.count == 3 ? parts[0] * 3600 + parts[1] * 60 + parts[2] : nil
        }
    }
}
