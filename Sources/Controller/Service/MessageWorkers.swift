import Foundation

/// A fixed set of threads that handle broker messages concurrently, so that
/// CSR checks and signing use every core and the register's group commit
/// (`Store.transaction`) has several transactions to put in one COMMIT.
///
/// Work is assigned by key (the device id): one device's messages always go
/// to the same thread and are handled in arrival order, one at a time — an
/// ack before the state report that follows it, a re-sent request after the
/// original has been answered (and committed). Different devices run in
/// parallel. Threads, not Swift tasks: the handlers block (fsync, the group
/// commit's wait), which must not starve the cooperative pool.
package final class MessageWorkers: @unchecked Sendable {
    // @unchecked Sendable: each queue's `jobs` and `stopped` are guarded by its `condition`.
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var stopped = false
    }

    private let queues: [Queue]
    private let threads: [Thread]

    init(count: Int, name: String) {
        precondition(count > 0)
        let queues = (0..<count).map { _ in Queue() }
        self.queues = queues
        threads = queues.enumerated().map { index, queue in
            let thread = Thread { MessageWorkers.run(queue) }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            return thread
        }
        for thread in threads { thread.start() }
    }

    /// A sensible default: enough threads that some wait for a COMMIT while
    /// others use the cores.
    package static var defaultCount: Int { min(max(ProcessInfo.processInfo.activeProcessorCount * 8, 8), 64) }

    /// Runs `body(0..<lanes)` on `lanes` threads of their own and returns when all
    /// have finished. Unlike `DispatchQueue.concurrentPerform`, which runs no more
    /// lanes at once than there are cores, a lane waiting for a COMMIT does not
    /// hold up the others.
    package static func runLanes(_ lanes: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        for lane in 0..<lanes {
            done.enter()
            let thread = Thread {
                body(lane)
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
    }

    /// Queues `job` on the thread that owns `key`.
    func submit(key: String, _ job: @escaping @Sendable () -> Void) {
        var hasher = Hasher()
        hasher.combine(key)
        let queue = queues[Int(UInt(bitPattern: hasher.finalize()) % UInt(queues.count))]
        queue.condition.lock()
        queue.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }

    /// Lets the queued work finish, then ends the threads.
    func stop() {
        for queue in queues {
            queue.condition.lock()
            queue.stopped = true
            queue.condition.signal()
            queue.condition.unlock()
        }
    }

    /// Nice value of the worker threads. Below the MQTT network thread and the
    /// task that hands messages out: when the machine is busy, reading from
    /// the broker (and acknowledging what was read) comes first, and the
    /// backlog waits in these queues instead of overflowing the broker's
    /// per-client queue (`max_queued_messages`), which drops messages.
    static let niceness: Int32 = 5

    private static func run(_ queue: Queue) {
        // Linux keeps a nice value per thread: `who` 0 is the calling thread only (setpriority(2), BUGS).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        while true {
            queue.condition.lock()
            while queue.head == queue.jobs.count && !queue.stopped { queue.condition.wait() }
            if queue.head == queue.jobs.count {
                queue.condition.unlock()
                return
            }
            let job = queue.jobs[queue.head]
            queue.head += 1
            if queue.head == queue.jobs.count || queue.head >= 1024 {
                queue.jobs.removeFirst(queue.head)
                queue.head = 0
            }
            queue.condition.unlock()
            job()
        }
    }
}
