import Dispatch
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Waits for SIGTERM or SIGINT (graceful stop) without a signal handler
/// running arbitrary code: the signals are ignored and watched by Dispatch.
/// Any number of tasks may wait; all are woken by the first signal. With
/// `signals: []` nothing is watched and only `fire` wakes the waiters (the
/// agent watches its signals without Dispatch, SignalPipe).
package final class ShutdownSignal: Sendable {
    private struct State {
        var fired: String?
        var waiters: [CheckedContinuation<String, Never>] = []
    }

    private let state = Mutex(State())
    // Kept only so the sources stay alive; never touched after init.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    package init(signals: [(Int32, String)] = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")]) {
        for (number, name) in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.fire(name) }
            source.resume()
            sources.append(source)
        }
    }

    /// Wakes every waiter, as a signal would (also used by tests and `retire`).
    package func fire(_ name: String) {
        let waiters = state.withLock { s -> [CheckedContinuation<String, Never>] in
            guard s.fired == nil else { return [] }
            s.fired = name
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume(returning: name) }
    }

    package var hasFired: Bool { state.withLock { $0.fired != nil } }

    /// The name of the first signal received.
    package func wait() async -> String {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { s -> String? in
                if let f = s.fired { return f }
                s.waiters.append(continuation)
                return nil
            }
            if let fired { continuation.resume(returning: fired) }
        }
    }
}
