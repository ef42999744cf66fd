#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `ca.rotate`: start a rotation of the issuing CA (docs/ca-rotation.md).
package struct CARotateParams: Codable, Sendable {
    package var reason: String
    /// Re-issue rate of the rotation's campaign.
    package var maxPerMinute: Int
    /// How long to wait for devices to acknowledge a trust bundle before going on without them, seconds.
    package var bundleTimeout: Int
    /// Per-device timeout of the re-issue campaign, seconds.
    package var deviceTimeout: Int

    package init(reason: String, maxPerMinute: Int = 600, bundleTimeout: Int = 600, deviceTimeout: Int = 600) {
        self.reason = reason
        self.maxPerMinute = maxPerMinute
        self.bundleTimeout = bundleTimeout
        self.deviceTimeout = deviceTimeout
    }
}

/// `ca.retire`: retire the old CA of a stalled rotation anyway. Certificates
/// it issued that are still valid are revoked (superseded): those devices
/// must enroll again.
package struct CARetireParams: Codable, Sendable {
    package var reason: String
    package init(reason: String) { self.reason = reason }
}

package struct CAGenerationView: Codable, Sendable, Equatable {
    package var generation: Int
    package var commonName: String
    package var serial: String
    /// prepared, active, retiring, retired.
    package var state: String
    package var notAfter: Int64
    /// Unexpired, unrevoked certificates it issued to devices.
    package var liveCertificates: Int

    package init(generation: Int, commonName: String, serial: String, state: String, notAfter: Int64, liveCertificates: Int) {
        self.generation = generation
        self.commonName = commonName
        self.serial = serial
        self.state = state
        self.notAfter = notAfter
        self.liveCertificates = liveCertificates
    }
}

package struct CARotationView: Codable, Sendable {
    package var id: String
    package var fromGeneration: Int
    package var toGeneration: Int
    /// trusting → reissuing → retiring → completed; stalled when it needs an operator.
    package var phase: String
    package var phaseStartedAt: Int64
    package var reason: String
    package var createdBy: String
    package var createdAt: Int64
    package var endedAt: Int64?
    package var campaignId: String?
    /// Trust-bundle commands of the current bundle step (old+new anchors, then new only).
    package var bundleSent: Int
    package var bundleAcknowledged: Int
    package var bundleRefused: Int
    package var bundleDevices: Int
    /// Devices still holding a valid certificate from the old CA.
    package var remainingOnOldCA: Int
    package var detail: String?

    package init(id: String, fromGeneration: Int, toGeneration: Int, phase: String, phaseStartedAt: Int64, reason: String, createdBy: String,
                 createdAt: Int64) {
        self.id = id
        self.fromGeneration = fromGeneration
        self.toGeneration = toGeneration
        self.phase = phase
        self.phaseStartedAt = phaseStartedAt
        self.reason = reason
        self.createdBy = createdBy
        self.createdAt = createdAt
        bundleSent = 0
        bundleAcknowledged = 0
        bundleRefused = 0
        bundleDevices = 0
        remainingOnOldCA = 0
    }

    package var isFinished: Bool { phase == "completed" }
}

/// `ca.status` (and the answer to `ca.rotate` and `ca.retire`).
package struct CAStatusView: Codable, Sendable {
    package var generations: [CAGenerationView]
    /// The latest rotation, if any.
    package var rotation: CARotationView?

    package init(generations: [CAGenerationView], rotation: CARotationView?) {
        self.generations = generations
        self.rotation = rotation
    }

    /// What `ca status` prints.
    package func render() -> String {
        var lines = ["issuing CAs:"]
        for g in generations {
            lines.append("  \(g.generation)  \(g.state + String(repeating: " ", count: max(0, 9 - g.state.count))) \(g.commonName)  serial \(g.serial.prefix(16))  live certificates \(g.liveCertificates)")
        }
        guard let r = rotation else {
            lines.append("no CA rotation yet")
            return lines.joined(separator: "\n")
        }
        lines.append("rotation \(r.id): CA \(r.fromGeneration) → CA \(r.toGeneration), phase \(r.phase), by \(r.createdBy): \(r.reason)")
        let steps = ["trusting", "reissuing", "retiring", "completed"]
        let done = steps.firstIndex(of: r.phase) ?? 0
        lines.append("  " + steps.enumerated().map { i, s in (i < done || r.phase == "completed" ? "✓ " : i == done ? "▶ " : "· ") + s }.joined(separator: "   "))
        if r.bundleDevices > 0 {
            lines.append("  trust bundle: \(r.bundleAcknowledged)/\(r.bundleDevices) acknowledged, \(r.bundleRefused) refused, \(r.bundleSent) sent")
        }
        if let campaign = r.campaignId { lines.append("  re-issue campaign: \(campaign) (lanyardctl campaign status \(campaign))") }
        if r.phase != "trusting" { lines.append("  devices still on CA \(r.fromGeneration): \(r.remainingOnOldCA)") }
        if let detail = r.detail { lines.append("  \(detail)") }
        return lines.joined(separator: "\n")
    }
}

extension CAStatusView {
    /// One line of progress: `CA 1 → CA 2 · reissuing · bundle 3/3 · on the old CA 1`.
    package func progressLine() -> String {
        guard let r = rotation else { return "no CA rotation" }
        var parts = ["CA \(r.fromGeneration) → CA \(r.toGeneration)", r.phase]
        if r.bundleDevices > 0 { parts.append("bundle \(r.bundleAcknowledged)/\(r.bundleDevices) acknowledged") }
        if r.phase == "reissuing" || r.phase == "stalled" || r.phase == "retiring" { parts.append("\(r.remainingOnOldCA) device(s) on CA \(r.fromGeneration)") }
        return parts.joined(separator: " · ")
    }

    /// Until the rotation completes or stalls, calls `fetch` every second and
    /// hands each new progress line to `show`. Returns the last status.
    package static func watch(_ first: CAStatusView, fetch: () throws -> CAStatusView, show: (String) -> Void) throws -> CAStatusView {
        var status = first
        var last = ""
        while true {
            let line = status.progressLine()
            if line != last { show(line); last = line }
            guard let phase = status.rotation?.phase, phase != "completed", phase != "stalled" else { return status }
            sleepOneSecond()
            status = try fetch()
        }
    }

    private static func sleepOneSecond() {
        var request = timespec(tv_sec: 1, tv_nsec: 0)
        _ = nanosleep(&request, nil)
    }
}
