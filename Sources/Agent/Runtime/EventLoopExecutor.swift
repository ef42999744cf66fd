// The runtime's custom-executor interface is still SPI on Swift 6.3
// (`ExecutorFactory`, `_createExecutors`); see docs/architecture.md §6 for
// why the agent uses it and what it costs if the SPI changes.
@_spi(ExperimentalCustomExecutors) @_spi(ExperimentalScheduling) import _Concurrency
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every Swift job of the agent — its tasks, the main actor, `Task.sleep`
/// timers — runs on one thread: this loop, which sleeps in `poll()` until a
/// job is enqueued (a byte on a pipe) or the nearest timer is due.
///
/// Why: on Linux the default executor is libdispatch's worker pool, and the
/// first worker it starts arms a one-second monitor timer that never stops
/// (61 of the agent's 66 wake-ups a minute when idle, docs/benchmarks.md).
/// An agent that only waits for its renewal and the broker's keepalive
/// should not wake at all in between. libmosquitto's network thread and
/// the hook thread stay their own threads; they hand work to this loop by
/// resuming continuations, which enqueues here.
package final class EventLoopExecutor: MainExecutor, TaskExecutor, SchedulingExecutor, @unchecked Sendable {
    // @unchecked Sendable: `state` is a Mutex; the pipe's descriptors are set once in init.
    private struct Timer {
        var deadline: UInt64
        var job: UnownedJob
    }
    private struct State {
        var ready: [UnownedJob] = []
        var timers: [Timer] = []
        var stopped = false
        var idle: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    package init() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("event loop: pipe() failed: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// From any thread: run `job` soon.
    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        state.withLock { $0.ready.append(job) }
        wake()
    }

    /// `Task.sleep` and friends: run `job` once `delay` has passed (any clock
    /// whose durations are `Swift.Duration`: continuous and suspending, the
    /// monotonic clock here either way).
    package func enqueue<C: Clock>(_ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C) {
        let duration = (delay as? Swift.Duration) ?? .zero
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds <= 0 && attoseconds <= 0 ? 0 : UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        let timer = Timer(deadline: EventLoopExecutor.monotonicNanoseconds() &+ nanoseconds, job: UnownedJob(job))
        state.withLock { $0.timers.append(timer) }
        wake()
    }

    /// From any thread: run `body` once, on the loop, the next time it has
    /// nothing to do, just before it sleeps. For work whose point is to be the
    /// last thing before a long sleep (IdleMemory).
    package func whenIdle(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.idle = body }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)  // EAGAIN when the pipe is full: the loop is awake anyway
    }

    /// Runs jobs until `stop()`; the calling thread becomes the loop.
    package func run() throws {
        let serial = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        while true {
            let (jobs, timeout, stopped, idle) = state.withLock { s -> ([UnownedJob], Int32, Bool, (@Sendable () -> Void)?) in
                let now = EventLoopExecutor.monotonicNanoseconds()
                var jobs = s.ready
                s.ready.removeAll(keepingCapacity: true)
                s.timers.removeAll { timer in
                    guard timer.deadline <= now else { return false }
                    jobs.append(timer.job)
                    return true
                }
                var timeout: Int32 = -1
                if !jobs.isEmpty {
                    timeout = 0
                } else if let next = s.timers.lazy.map(\.deadline).min() {
                    timeout = Int32(min((next - now) / 1_000_000 + 1, 3_600_000))  // ms, rounded up
                }
                var idle: (@Sendable () -> Void)?
                if jobs.isEmpty { swap(&idle, &s.idle) }
                return (jobs, timeout, s.stopped, idle)
            }
            if stopped { return }
            if let idle {
                idle()
                continue
            }
            for job in jobs { job.runSynchronously(isolatedTo: serial, taskExecutor: task) }
            if jobs.isEmpty {
                var descriptor = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, timeout)
                var drain = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
        }
    }

    package func stop() {
        state.withLock { $0.stopped = true }
        wake()
    }
}

/// Installs `EventLoopExecutor` as the main and default executor. Call it
/// first thing, before any task exists; then create the agent's task and
/// call `run()` on the main thread.
package enum AgentExecutors: ExecutorFactory {
    package static let loop = EventLoopExecutor()
    package static var mainExecutor: any MainExecutor { loop }
    package static var defaultExecutor: any TaskExecutor { loop }

    package static func install() {
        _createExecutors(factory: AgentExecutors.self)
    }
}
