import Foundation

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
        let process = Process()
        if executable.contains("/") {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [executable] + arguments
        }
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        // Files, not pipes: no deadlock when a child writes a lot.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        try? outHandle.close()
        try? errHandle.close()
        return Result(
            exitCode: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
            timedOut: timedOut)
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
