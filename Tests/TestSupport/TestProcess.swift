import Foundation
import Shared

/// Runs a command to completion with a timeout, capturing its output.
package struct TestProcess {
    package struct Result: Sendable {
        package var exitCode: Int32
        package var stdout: String
        package var stderr: String
        package var timedOut: Bool
        package var succeeded: Bool { exitCode == 0 && !timedOut }
    }

    package struct Failure: Error, CustomStringConvertible {
        package var command: [String]
        package var result: Result
        package init(command: [String], result: Result) {
            self.command = command
            self.result = result
        }

        package var description: String {
            "\(command.joined(separator: " ")) failed (exit \(result.exitCode)\(result.timedOut ? ", timed out" : "")): \(result.stderr)\(result.stdout)"
        }
    }

    /// Runs `executable` (a path, or a name looked up in PATH) with `arguments`.
    @discardableResult
    package static func run(
        _ executable: String, _ arguments: [String], stdin: String? = nil,
        environment: [String: String]? = nil, currentDirectory: String? = nil, timeout: Double = 30
    ) throws -> Result {
        // posix_spawn and waitpid on this child's pid, not Foundation's
        // Process: under load its termination notice arrived after the
        // timeout for a child that had long exited with 0 (seen in CI).
        let path = executable.contains("/") ? executable : try resolve(executable)
        var env = ProcessInfo.processInfo.environment
        if let environment { env.merge(environment) { $1 } }
        // Files, not pipes: no deadlock when a child writes a lot.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path, err = dir.appendingPathComponent("err").path
        var stdinPath = "/dev/null"
        if let stdin {
            stdinPath = dir.appendingPathComponent("in").path
            try stdin.write(toFile: stdinPath, atomically: false, encoding: .utf8)
        }
        let pid: pid_t
        switch CleanSpawn.spawn(path, arguments, environment: env.map { "\($0.key)=\($0.value)" }, stdinPath: stdinPath,
                                stdoutPath: out, stderrPath: err, directory: currentDirectory) {
        case .success(let spawned): pid = spawned
        case .failure(let failure): throw Failure(command: [executable] + arguments, result: Result(exitCode: 127, stdout: "", stderr: failure.description, timedOut: false))
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || (reaped < 0 && errno != EINTR) { break }
            if Date() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            usleep(2_000)
        }
        return Result(
            exitCode: CleanSpawn.exitStatus(status),
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "",
            timedOut: timedOut)
    }

    /// A command name looked up in PATH, as a shell would.
    private static func resolve(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        throw Failure(command: [name], result: Result(exitCode: 127, stdout: "", stderr: "\(name): not found in PATH", timedOut: false))
    }

    /// Like `run`, but throws unless the command exits 0.
    @discardableResult
    package static func check(
        _ executable: String, _ arguments: [String], stdin: String? = nil,
        currentDirectory: String? = nil, timeout: Double = 30
    ) throws -> Result {
        let result = try run(executable, arguments, stdin: stdin, currentDirectory: currentDirectory, timeout: timeout)
        guard result.succeeded else { throw Failure(command: [executable] + arguments, result: result) }
        return result
    }
}
