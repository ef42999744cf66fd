#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Starts a program with posix_spawn and a clean signal state: an empty
/// signal mask and default dispositions. A child started from a Dispatch
/// thread otherwise inherits its blocked signals and ignores SIGTERM and
/// SIGHUP (seen with Mosquitto started through Foundation's `Process`), and
/// would inherit whatever the parent ignores. Used for the agent's hooks and
/// for the processes tests start.
package enum CleanSpawn {
    /// - Parameters:
    ///   - environment: `KEY=value` strings, exactly what the child gets.
    ///   - stdinPath: read as standard input.
    ///   - stdoutPath, stderrPath: appended to; nil keeps the parent's. The
    ///     same path for both shares one descriptor, so lines interleave in order.
    ///   - directory: the child's working directory; nil keeps the parent's.
    ///   - newProcessGroup: the child leads its own group, so a timeout can kill its descendants too.
    /// - Returns: the pid, or the `strerror` text of the failure.
    package static func spawn(_ path: String, _ arguments: [String], environment: [String], stdinPath: String = "/dev/null",
                              stdoutPath: String? = nil, stderrPath: String? = nil, directory: String? = nil,
                              newProcessGroup: Bool = false) -> Result<pid_t, SpawnFailure> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let directory { spawnAddChdir(&actions, directory) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        if let stdoutPath {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        if let stderrPath {
            if stderrPath == stdoutPath {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        // exec resets handled signals itself; ignored ones must be reset here.
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { return .failure(SpawnFailure(description: "posix_spawn \(path): \(String(cString: strerror(rc)))")) }
        return .success(pid)
    }

    package struct SpawnFailure: Error, Sendable, CustomStringConvertible {
        package var description: String
    }

    /// The exit status of a reaped child: its code, or 128 + the signal that ended it.
    package static func exitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// glibc ≥ 2.29 has it, but exports the prototype only under _GNU_SOURCE.
@_silgen_name("posix_spawn_file_actions_addchdir_np")
private func spawnAddChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32
