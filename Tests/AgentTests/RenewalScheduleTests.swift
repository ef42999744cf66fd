import Foundation
import Testing

@testable import Agent

/// A deterministic generator (SplitMix64) so a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("RenewalSchedule: jittered deadlines and bounded retries")
struct RenewalScheduleTests {
    let issuedAt = referenceTime
    let notAfter = referenceTime.addingTimeInterval(86400)

    @Test("1,000 deadlines for identical certificates spread out, all inside the jitter window")
    func deadlinesSpread() {
        var rng = SystemRandomNumberGenerator()
        let deadlines = (0..<1000).map { _ in
            RenewalSchedule.deadline(issuedAt: issuedAt, notAfter: notAfter, fraction: 2.0 / 3.0, jitter: 0.05, using: &rng)
        }
        let lower = issuedAt.addingTimeInterval(86400 * (2.0 / 3.0 - 0.05))
        let upper = issuedAt.addingTimeInterval(86400 * (2.0 / 3.0 + 0.05))
        #expect(deadlines.allSatisfy { $0 >= lower && $0 <= upper })
        let sorted = deadlines.sorted()
        let spread = sorted.last!.timeIntervalSince(sorted.first!)
        #expect(spread > 1, "all 1,000 deadlines within one second")
        // Not merely two clusters: most deadlines are at least a second from the median.
        let median = sorted[500]
        #expect(deadlines.filter { abs($0.timeIntervalSince(median)) > 1 }.count > 900)
        // Uses a good part of the ±5 % window (±4320 s) in both directions.
        #expect(sorted.first!.timeIntervalSince(lower) < 0.2 * 86400 * 0.05)
        #expect(upper.timeIntervalSince(sorted.last!) < 0.2 * 86400 * 0.05)
        // Few duplicates.
        #expect(Set(deadlines.map { Int64($0.timeIntervalSince1970) }).count > 800)
    }

    @Test("without jitter the deadline is exactly the fraction of the lifetime, counted from issuance")
    func deadlineNoJitter() {
        var rng = SeededGenerator(state: 1)
        let d = RenewalSchedule.deadline(issuedAt: issuedAt, notAfter: notAfter, fraction: 0.5, jitter: 0, using: &rng)
        #expect(d == issuedAt.addingTimeInterval(43200))
    }

    @Test("the deadline is clamped to 5 % ... 95 % of the lifetime")
    func deadlineClamped() {
        var rng = SeededGenerator(state: 7)
        for _ in 0..<200 {
            let late = RenewalSchedule.deadline(issuedAt: issuedAt, notAfter: notAfter, fraction: 0.95, jitter: 0.2, using: &rng)
            #expect(late <= issuedAt.addingTimeInterval(86400 * 0.95))
            let early = RenewalSchedule.deadline(issuedAt: issuedAt, notAfter: notAfter, fraction: 0.1, jitter: 0.2, using: &rng)
            #expect(early >= issuedAt.addingTimeInterval(86400 * 0.05))
        }
        // An already-expired certificate still gets a deadline in the past or now, never a crash.
        let odd = RenewalSchedule.deadline(issuedAt: notAfter, notAfter: issuedAt, fraction: 0.5, jitter: 0.05, using: &rng)
        #expect(odd <= notAfter.addingTimeInterval(1))
    }

    @Test("retryDelay never exceeds the cap and is at least 0.5 s", arguments: [1.0, 30.0, 300.0])
    func retryDelayCap(cap: Double) {
        var rng = SeededGenerator(state: 42)
        for attempt in 0...64 {
            for _ in 0..<50 {
                let d = RenewalSchedule.retryDelay(attempt: attempt, cap: cap, remaining: 30 * 86400, using: &rng)
                #expect(d <= cap, "attempt \(attempt): \(d) > cap \(cap)")
                #expect(d >= 0.5, "attempt \(attempt): \(d)")
            }
        }
    }

    @Test("retryDelay grows with the attempt (exponential backoff) until the cap")
    func retryDelayGrows() {
        var rng = SeededGenerator(state: 3)
        func maxDelay(_ attempt: Int) -> Double {
            (0..<500).map { _ in RenewalSchedule.retryDelay(attempt: attempt, cap: 300, remaining: 86400, using: &rng) }.max()!
        }
        #expect(maxDelay(1) <= 2)
        #expect(maxDelay(3) <= 8)
        #expect(maxDelay(3) > 4)
        #expect(maxDelay(12) > 200)
    }

    @Test("retryDelay shrinks near expiry: at most a tenth of what is left, never below the 1 s floor")
    func retryDelayNearExpiry() {
        var rng = SeededGenerator(state: 9)
        for remaining in [600.0, 100.0, 20.0] {
            for _ in 0..<500 {
                let d = RenewalSchedule.retryDelay(attempt: 20, cap: 300, remaining: remaining, using: &rng)
                #expect(d <= remaining / 10, "remaining \(remaining): \(d)")
            }
        }
        for remaining in [5.0, 0.0, -100.0] {
            for _ in 0..<200 {
                let d = RenewalSchedule.retryDelay(attempt: 20, cap: 300, remaining: remaining, using: &rng)
                #expect(d <= 1 && d >= 0.5, "remaining \(remaining): \(d)")
            }
        }
        // Far from expiry the full cap is used.
        let far = (0..<500).map { _ in RenewalSchedule.retryDelay(attempt: 20, cap: 300, remaining: 86400, using: &rng) }.max()!
        #expect(far > 100)
    }
}
