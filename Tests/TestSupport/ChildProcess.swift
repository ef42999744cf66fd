import Foundation
import Shared

/// A long-running child process (a broker, an agent under test) started with
/// `posix_spawn`, with output to a file.
///
/// Unlike `Foundation.Process`, the child gets an empty signal mask and
/// default signal handlers: children spawned from Dispatch worker threads
/// otherwise inherit their blocked signals and ignore SIGHUP/SIGTERM.
///
/// `@unchecked Sendable`: the exit status is guarded by `lock`.
package final class ChildProcess: @unchecked Sendable {
    package let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    package struct SpawnError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Starts `path` with `arguments`; stdout and stderr are appended to `outputPath`.
    package init(_ path: String, _ arguments: [String], outputPath: String, environment: [String: String]? = nil) throws {
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        switch CleanSpawn.spawn(path, arguments, environment: env, stdoutPath: outputPath, stderrPath: outputPath) {
        case .success(let pid): self.pid = pid
        case .failure(let failure): throw SpawnError(description: failure.description)
        }
    }

    /// The exit status (or 128 + signal), nil while running.
    package var terminationStatus: Int32? {
        lock.withLock {
            if exitStatus == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { exitStatus = CleanSpawn.exitStatus(status) }
            }
            return exitStatus
        }
    }

    package var isRunning: Bool { terminationStatus == nil }

    package func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits up to `timeout` seconds; returns the status or nil on timeout.
    @discardableResult
    package func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let status = terminationStatus { return status }
            usleep(5_000)
        }
        return terminationStatus
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; reaps the child.
    package func terminate(grace: Double = 5) {
        signal(SIGTERM)
        if wait(timeout: grace) == nil {
            signal(SIGKILL)
            wait(timeout: 5)
        }
    }

    deinit {
        if isRunning { terminate(grace: 1) }
    }
}
