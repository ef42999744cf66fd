import Foundation

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
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, env)
        guard rc == 0 else { throw SpawnError(description: "posix_spawn \(path): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// The exit status (or 128 + signal), nil while running.
    package var terminationStatus: Int32? {
        lock.withLock {
            if exitStatus == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    let signal = status & 0x7F
                    exitStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
                }
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
