#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Synchronization
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// What a hook is told about the credential, as `LANYARD_*` environment variables.
package struct HookContext: Sendable, Equatable {
    package enum Event: String, Sendable { case renew, revoke }

    package var event: Event
    package var deviceID: String
    package var certificatePath: String
    package var keyPath: String
    package var chainPath: String
    package var serial: String
    package var notAfter: Int64

    package init(event: Event, deviceID: String, certificatePath: String, keyPath: String, chainPath: String, serial: String, notAfter: Int64) {
        self.event = event
        self.deviceID = deviceID
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.chainPath = chainPath
        self.serial = serial
        self.notAfter = notAfter
    }

    /// The hook's whole environment: nothing of the agent's own environment
    /// leaks into it except PATH, so a hook behaves the same under systemd and
    /// in a shell.
    package func environment(path: String?) -> [String] {
        [
            "PATH=\(path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")",
            "LANYARD_DEVICE_ID=\(deviceID)",
            "LANYARD_EVENT=\(event.rawValue)",
            "LANYARD_CERT_PATH=\(certificatePath)",
            "LANYARD_KEY_PATH=\(keyPath)",
            "LANYARD_CHAIN_PATH=\(chainPath)",
            "LANYARD_SERIAL=\(serial)",
            "LANYARD_NOT_AFTER=\(notAfter)",
        ]
    }
}

/// How a hook ended.
package struct HookOutcome: Sendable, Equatable {
    package enum Status: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut(Duration)
        case spawnFailed(String)
    }

    package var event: HookContext.Event
    package var status: Status
    package var succeeded: Bool { status == .exited(0) }

    /// For logs and `lastError`; never includes the command's output.
    package var description: String {
        switch status {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        case .timedOut(let limit): "timed out after \(limit.seconds) s (process group killed)"
        case .spawnFailed(let why): "could not start: \(why)"
        }
    }
}

/// Runs `on_renew` / `on_revoke` as `/bin/sh -c CMD` (like step's `--exec`
/// and certmonger's post-save command).
///
/// posix_spawn, not Foundation.Process: the agent links FoundationEssentials
/// only. The child gets an empty signal mask and default dispositions (the
/// agent's signal handling must not leak into a hook), and its own process group so a timeout kills the
/// shell *and* whatever it started.
package enum HookRunner {
    /// One hook at a time, in order, off the agent's event loop: a thread of
    /// its own (not libdispatch, see EventLoopExecutor), started with the
    /// first hook and then blocked until the next one.
    private static let worker = HookWorker()

    /// Runs the hook on the hook thread and calls `completion` there.
    package static func launch(_ command: String, context: HookContext, timeout: Duration,
                               completion: @escaping @Sendable (HookOutcome) -> Void) {
        worker.submit { completion(run(command, context: context, timeout: timeout)) }
    }

    /// Runs the hook and waits for it (at most `timeout`, then SIGKILL to its
    /// process group). Blocks the calling thread.
    package static func run(_ command: String, context: HookContext, timeout: Duration) -> HookOutcome {
        func outcome(_ status: HookOutcome.Status) -> HookOutcome { HookOutcome(event: context.event, status: status) }

        // No stdin; stdout and stderr stay the agent's (journald keeps them).
        let environment = context.environment(path: getenv("PATH").map { String(cString: $0) })
        let pid: pid_t
        switch CleanSpawn.spawn("/bin/sh", ["-c", command], environment: environment, newProcessGroup: true) {
        case .success(let spawned): pid = spawned
        case .failure(let failure): return outcome(.spawnFailed(failure.description))
        }

        // Poll rather than block in waitpid: a hook that hangs must not hang
        // this thread past the timeout. Short sleeps first so quick hooks
        // report quickly, then at most 50 ms between looks.
        let start = ContinuousClock.now
        var pause = 1_000_000  // ns
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let signal = status & 0x7F
                return outcome(signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal))
            }
            if reaped < 0 && errno != EINTR { return outcome(.spawnFailed("waitpid: \(String(cString: strerror(errno)))")) }
            if ContinuousClock.now - start >= timeout {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return outcome(.timedOut(timeout))
            }
            var ts = timespec(tv_sec: 0, tv_nsec: pause)
            nanosleep(&ts, nil)
            pause = min(pause * 2, 50_000_000)
        }
    }
}

/// A serial queue on one plain thread: jobs run in order; the thread sleeps on a semaphore in between.
private final class HookWorker: Sendable {
    private let jobs = Mutex<(queue: [@Sendable () -> Void], started: Bool)>(([], false))
    private let ready = DispatchSemaphore(value: 0)

    func submit(_ job: @escaping @Sendable () -> Void) {
        let start = jobs.withLock { state -> Bool in
            state.queue.append(job)
            defer { state.started = true }
            return !state.started
        }
        if start {
            PlainThread.start(name: "hooks") { [self] in
                while true {
                    ready.wait()
                    guard let next = jobs.withLock({ $0.queue.isEmpty ? nil : $0.queue.removeFirst() }) else { continue }
                    next()
                }
            }
        }
        ready.signal()
    }
}
