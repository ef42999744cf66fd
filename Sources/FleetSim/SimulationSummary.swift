import Foundation

package struct RegistrationFigures: Codable, Sendable {
    var devices: Int
    var seconds: Double
    var perSecond: Double
}

/// One phase (enrollment or a renewal round): end-to-end issuance figures.
/// Latency runs from the request's first publish to the certificate
/// received and verified by the device; the controller has committed it to
/// the register before it replies.
package struct PhaseFigures: Codable, Sendable {
    package var name: String
    package var concurrency: Int
    package var certificates: Int
    package var seconds: Double
    package var perSecond: Double
    package var complete: Bool
    package var p50Ms: Double?
    package var p99Ms: Double?
    package var maxMs: Double?
    package var controllerCPUSeconds: Double?
    package var controllerCPUMsPerCertificate: Double?
    package var controllerRSSKiB: Int?
    package var brokerCPUSeconds: Double?
    package var brokerRSSKiB: Int?
    package var simulatorCPUSeconds: Double?
}

package struct RevocationFigures: Codable, Sendable {
    package var device: String
    /// The admin call (register, CRL, broker reload, command) returned.
    package var adminCallSeconds: Double?
    /// The device received and verified the signed revoke command.
    package var commandVerifiedSeconds: Double?
    /// The broker refused a new connection with the revoked certificate.
    package var brokerRefusedSeconds: Double?
    package var refusal: String?
    package var brokerReloaded: Bool?
    package var commandSent: Bool?
    package var error: String?
}

package struct RegisterCheck: Codable, Sendable {
    /// `status.issued` before and after the run.
    package var issuedBefore: Int?
    package var issuedAfter: Int?
    package var certificatesReceived: Int?
    /// Every certificate a device verified is in the register (and no more were issued).
    package var matches: Bool? {
        guard let issuedBefore, let issuedAfter, let certificatesReceived else { return nil }
        return issuedAfter - issuedBefore == certificatesReceived
    }

    enum CodingKeys: String, CodingKey { case issuedBefore, issuedAfter, certificatesReceived, matches }

    package init() {}

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        issuedBefore = try c.decodeIfPresent(Int.self, forKey: .issuedBefore)
        issuedAfter = try c.decodeIfPresent(Int.self, forKey: .issuedAfter)
        certificatesReceived = try c.decodeIfPresent(Int.self, forKey: .certificatesReceived)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(issuedBefore, forKey: .issuedBefore)
        try c.encodeIfPresent(issuedAfter, forKey: .issuedAfter)
        try c.encodeIfPresent(certificatesReceived, forKey: .certificatesReceived)
        try c.encodeIfPresent(matches, forKey: .matches)
    }
}

/// What `lanyard-fleetsim run` prints at the end (`--json` for this as JSON).
package struct SimulationSummary: Codable, Sendable {
    package var machine: String
    package var mode = "connection-per-device"
    package var devices: Int
    package var threads: Int
    package var date = ISO8601DateFormatter().string(from: Date())
    package var registration: RegistrationFigures?
    package var phases: [PhaseFigures] = []
    package var revocations: [RevocationFigures] = []
    package var register = RegisterCheck()
    package var counters: [String: Int] = [:]
    package var errors: [String: Int] = [:]
    package var errorSamples: [String] = []
    package var complete = false
    /// Phase name -> latency samples in seconds (worker processes only).
    package var latencySamples: [String: [Double]]?
    package var processes = 1

    init(configuration: SimulationConfiguration, machine: String) {
        self.machine = machine
        self.devices = configuration.devices
        self.threads = configuration.threads
        if configuration.multiplex > 0 { mode = "\(configuration.multiplex) connections" }
    }

    /// All devices enrolled, every round done, no failures, every revocation enforced, register consistent.
    package var ok: Bool {
        complete && (counters["failedDevices"] ?? 1) == 0 && register.matches != false
            && revocations.allSatisfy { $0.brokerRefusedSeconds != nil && $0.commandVerifiedSeconds != nil }
    }

    package func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    package var markdown: String {
        func f(_ v: Double?, _ format: String = "%.1f") -> String { v.map { String(format: format, $0) } ?? "-" }
        var lines: [String] = []
        let transport = mode == "connection-per-device" ? "one MQTT+TLS connection each" : "multiplexed over \(mode)"
        lines.append("Fleet simulation: \(devices) devices, \(transport), \(processes) process(es) of \(threads) threads; machine: \(machine).")
        if let r = registration {
            lines.append(String(format: "Registration (admin API, add + approve): %d devices in %.1f s, %.0f/s.", r.devices, r.seconds, r.perSecond))
        }
        lines.append("")
        lines.append("| phase | concurrency | certificates | wall s | certs/s | p50 ms | p99 ms | max ms | controller CPU ms/cert | controller RSS MiB | broker CPU s |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for p in phases {
            lines.append("| \(p.name)\(p.complete ? "" : " (incomplete)") | \(p.concurrency) | \(p.certificates) | \(f(p.seconds, "%.2f")) | \(f(p.perSecond, "%.0f")) | \(f(p.p50Ms)) | \(f(p.p99Ms)) | \(f(p.maxMs)) | \(f(p.controllerCPUMsPerCertificate, "%.3f")) | \(f(p.controllerRSSKiB.map { Double($0) / 1024 })) | \(f(p.brokerCPUSeconds, "%.2f")) |")
        }
        if !revocations.isEmpty {
            lines.append("")
            lines.append("| revoked device | admin call ms | command verified ms | broker refused ms |")
            lines.append("|---|---|---|---|")
            for r in revocations {
                lines.append("| \(r.device) | \(f(r.adminCallSeconds.map { $0 * 1000 })) | \(f(r.commandVerifiedSeconds.map { $0 * 1000 })) | \(f(r.brokerRefusedSeconds.map { $0 * 1000 }))\(r.error.map { " (\($0))" } ?? "") |")
            }
        }
        lines.append("")
        let issued = register.issuedAfter.flatMap { a in register.issuedBefore.map { a - $0 } }
        lines.append("Register: \(issued.map(String.init) ?? "?") certificates issued, \(register.certificatesReceived ?? 0) received and verified by devices. Errors: \(errors.isEmpty ? "none" : errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")).")
        for sample in errorSamples { lines.append("- \(sample)") }
        return lines.joined(separator: "\n")
    }
}
