import Foundation

/// Runs blocking work (waiting for a child process for many seconds) on a
/// thread of its own. Swift Testing runs suites in parallel on the
/// concurrency pool, which has one thread per core here (two): a test that
/// blocks one for the length of a simulator run stalls every other test's
/// `await`s, and their timeouts expire while their devices are long
/// connected.
package func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
