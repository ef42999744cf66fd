#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// systemd's watchdog (`WatchdogSec=` sets `$WATCHDOG_USEC`): a tick at half
/// the interval, fed into the agent's event stream so the `WATCHDOG=1` ping
/// is sent by the event loop itself. A stuck loop stops pinging and systemd
/// restarts the agent.
enum Watchdog {
    /// The ping interval, or nil when no watchdog is asked for (or it is meant for another process).
    static func interval(environment: [String: String], pid: Int32) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], let ownerPID = Int32(owner), ownerPID != pid { return nil }
        return .microseconds(usec / 2)
    }

    /// Starts the ticks; nil when there is no watchdog. Cancel the task to stop.
    static func start(_ tick: @escaping @Sendable () -> Void) -> Task<Void, Never>? {
        guard let every = interval(environment: ProcessInfo.processInfo.environment, pid: getpid()) else { return nil }
        return Task {
            while !Task.isCancelled {
                tick()
                do { try await Task.sleep(for: every) } catch { return }
            }
        }
    }
}
