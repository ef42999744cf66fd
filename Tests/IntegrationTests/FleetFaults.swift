import Foundation
import TestSupport

/// Fault injection for the end-to-end harness: agents started with extra
/// environment (crash points, libfaketime) and per-device config overrides.
/// Kept apart from Fleet.swift so the plain story stays plain.
extension Fleet {
    /// libfaketime from the Debian package `libfaketime` (installed by
    /// `scripts/install-deps.sh --test`).
    static let fakeTimeLibrary = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

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
        var env = ["LD_PRELOAD": fakeTimeLibrary, "FAKETIME_DONT_FAKE_MONOTONIC": "1"]
        if let spec { env["FAKETIME"] = spec }
        if let file {
            env["FAKETIME_TIMESTAMP_FILE"] = file
            env["FAKETIME_NO_CACHE"] = "1"
        }
        return env
    }

    /// Sets `key = value` in a section of a registered device's agent.conf
    /// (the section must exist; the key must not be set yet).
    func setAgentOption(_ id: String, section: String, _ key: String, _ value: String) throws {
        let path = "\(agentDirectory(id))/agent.conf"
        let config = try String(contentsOfFile: path, encoding: .utf8)
        let header = "[\(section)]\n"
        guard config.contains(header) else { throw SampleProblem("no [\(section)] in \(path)") }
        try config.replacingOccurrences(of: header, with: header + "\(key) = \(value)\n").write(toFile: path, atomically: true, encoding: .utf8)
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
