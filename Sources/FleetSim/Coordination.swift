import Foundation
import Shared
import Synchronization

/// Monotonic nanoseconds (CLOCK_MONOTONIC): every duration the simulator reports.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// What the whole fleet is doing now; set by the coordinator, read by the shards.
enum SimulationPhase: Equatable, Sendable {
    case setup
    /// Every device enrolls (bootstrap listener), then connects with its certificate.
    case enroll
    /// Every online device renews once more (round 1, 2, ...), then reconnects with the new certificate.
    case renew(round: Int)
    /// Devices stay online and follow commands (revocations are driven by the coordinator).
    case hold
    case stop

    var label: String {
        switch self {
        case .setup: "setup"
        case .enroll: "enroll"
        case .renew(let round): "renew-\(round)"
        case .hold: "hold"
        case .stop: "stop"
        }
    }
}

/// A bounded number of things in flight across all shards (issuance
/// requests, TLS connection attempts). Lock-free; the limit can change
/// between phases.
final class SlotPool: Sendable {
    private let inUse = Atomic<Int>(0)
    private let limit: Atomic<Int>

    init(limit: Int) { self.limit = Atomic(max(1, limit)) }

    func setLimit(_ value: Int) { limit.store(max(1, value), ordering: .relaxed) }

    func tryAcquire() -> Bool {
        var current = inUse.load(ordering: .relaxed)
        while current < limit.load(ordering: .relaxed) {
            let (exchanged, original) = inUse.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() { inUse.subtract(1, ordering: .acquiringAndReleasing) }

    var current: Int { inUse.load(ordering: .relaxed) }
}

/// Shared state between the coordinator thread and the shard threads.
final class FleetState: Sendable {
    private let phaseBox = Mutex(SimulationPhase.setup)
    /// Bumped on every phase change so shards notice it with one atomic load.
    let phaseGeneration = Atomic<Int>(0)
    let issueSlots: SlotPool
    let connectSlots: SlotPool

    // Counters (monotonic, for progress and the summary).
    let enrolled = Atomic<Int>(0)
    let online = Atomic<Int>(0)
    let renewed = Atomic<Int>(0)
    let failedDevices = Atomic<Int>(0)
    let connectionErrors = Atomic<Int>(0)
    let requestRetries = Atomic<Int>(0)
    let commandsReceived = Atomic<Int>(0)
    let commandsRefused = Atomic<Int>(0)
    let rotationsFollowed = Atomic<Int>(0)
    let revocationsFollowed = Atomic<Int>(0)
    let certificatesReceived = Atomic<Int>(0)
    /// Devices that finished the current phase's work (or failed for good).
    let phaseDone = Atomic<Int>(0)

    private let errorCodes = Mutex<[String: Int]>([:])
    private let firstErrors = Mutex<[String]>([])
    private let latencies = Mutex<[String: [Double]]>([:])
    private let revocationStarts = Mutex<[Int: UInt64]>([:])
    private let revocationResults = Mutex<[Int: RevocationTiming]>([:])

    /// `--event-log`: one line per observation, for timings whose start only the caller knows.
    let eventLog: EventLog?

    init(issueConcurrency: Int, connectConcurrency: Int, eventLog: EventLog? = nil) {
        issueSlots = SlotPool(limit: issueConcurrency)
        connectSlots = SlotPool(limit: connectConcurrency)
        self.eventLog = eventLog
    }

    var phase: SimulationPhase { phaseBox.withLock { $0 } }

    func setPhase(_ phase: SimulationPhase) {
        phaseBox.withLock { $0 = phase }
        phaseGeneration.add(1, ordering: .sequentiallyConsistent)
    }

    /// Counts an error by code; the first few messages are kept for the summary (never keys or tokens).
    func recordError(_ code: String, _ message: String) {
        errorCodes.withLock { $0[code, default: 0] += 1 }
        firstErrors.withLock { if $0.count < 10 { $0.append("\(code): \(message)") } }
    }

    var errors: [String: Int] { errorCodes.withLock { $0 } }
    var errorSamples: [String] { firstErrors.withLock { $0 } }
    var errorCount: Int { errors.values.reduce(0, +) }

    func recordLatency(_ series: String, seconds: Double) {
        latencies.withLock { $0[series, default: []].append(seconds) }
    }

    func latencySamples(_ series: String) -> [Double] { latencies.withLock { $0[series] ?? [] } }

    // Revocation timing: the coordinator notes when it asked, the device when it saw the command and the refusal.
    func noteRevocationStart(device: Int, at: UInt64) { revocationStarts.withLock { $0[device] = at } }
    func revocationStart(device: Int) -> UInt64? { revocationStarts.withLock { $0[device] } }
    func updateRevocation(device: Int, _ body: (inout RevocationTiming) -> Void) {
        revocationResults.withLock { results in
            var timing = results[device] ?? RevocationTiming()
            body(&timing)
            results[device] = timing
        }
    }
    func revocation(device: Int) -> RevocationTiming? { revocationResults.withLock { $0[device] } }
}

/// `--event-log FILE`: `<event> <device id> <Unix time, seconds with 6 decimals>` per line,
/// appended with O_APPEND so the worker processes can share one file. Events:
/// `command-revoke` (a signed revoke verified), `refused` (the broker refused the
/// revoked certificate's handshake), `command-rotate`, `rotated` (state with the new
/// serial published after the reconnect). For revocations the simulator did not start
/// itself (`lanyardctl revoke --selector` run by a script), the caller subtracts its own start time.
final class EventLog: Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WireError(.badRequest, "cannot open --event-log \(path): errno \(errno)") }
    }

    deinit { close(fd) }

    func note(_ event: String, _ device: DeviceID) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let line = "\(event) \(device.rawValue) \(now.tv_sec).\(String(format: "%06d", now.tv_nsec / 1000))\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    }
}

/// Seconds from the admin call to each observation, for one revoked device.
struct RevocationTiming: Sendable {
    var commandVerified: Double?
    var brokerRefused: Double?
    var refusalReason: String?
}

/// Percentiles over a sample (nearest rank).
enum Percentile {
    static func of(_ samples: [Double], _ p: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}
