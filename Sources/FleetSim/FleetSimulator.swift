import Foundation
import Shared

/// Runs a simulated fleet against a real broker and controller: registers
/// and approves the devices through the admin API, then enrolls them, runs
/// the renewal rounds, revokes some devices one by one, holds, and reports.
///
/// The coordinator (the caller's thread) changes phases and prints progress;
/// the shards do all network and crypto work.
package final class FleetSimulator {
    private let configuration: SimulationConfiguration
    private let admin: AdminClient
    private let log: (String) -> Void
    private let barrier: ((String) -> Void)?
    private let started = monotonicNanoseconds()

    /// - Parameters:
    ///   - log: progress lines (stderr in the tool).
    ///   - barrier: called before each phase (`enroll`, `renew-1`, ..., `revoke`, `hold`, `end`) and returns when
    ///     the phase may start: several worker processes step through the phases together (see `FleetCoordinator`).
    package init(_ configuration: SimulationConfiguration, barrier: ((String) -> Void)? = nil, log: @escaping (String) -> Void) throws {
        try configuration.validate()
        self.configuration = configuration
        self.admin = AdminClient(socketPath: configuration.adminSocket)
        self.barrier = barrier
        self.log = log
    }

    package func run() throws -> SimulationSummary {
        let c = configuration
        // libmosquitto holds three descriptors per handle (the socket and a socket pair).
        let fileLimit = raiseFileLimit()
        let needed = Self.descriptorsNeeded(c)
        guard fileLimit >= needed else {
            throw WireError(.badRequest, "RLIMIT_NOFILE is \(fileLimit); \(c.devices) devices need \(needed) (3 per connection): use --processes")
        }
        let trust = try Certificate.chain(fromPEM: String(contentsOfFile: c.bundlePath, encoding: .utf8))
        guard !trust.isEmpty else { throw WireError(.badRequest, "no certificates in \(c.bundlePath)") }
        let status = try admin.call(.status, Empty(), as: ControllerStatus.self)
        let trustStore = try TLSTrustStore(trustAnchors: trust)
        let state = FleetState(issueConcurrency: c.enrollConcurrency, connectConcurrency: c.connectConcurrency,
                               eventLog: try c.eventLogPath.map { try EventLog(path: $0) })
        let context = ShardContext(configuration: c, trustAnchors: trust, trustStore: trustStore,
                                   bootstrapTLS: try TLSClientContext(trust: trustStore, serverName: c.host), trustDomain: status.trustDomain,
                                   state: state)
        var summary = SimulationSummary(configuration: c, machine: machineDescription())
        summary.register.issuedBefore = status.issued

        // 1. Register and approve every device (admin API, like `lanyardctl device add/approve`).
        let devices = (0..<c.devices).map { VirtualDevice(index: $0, id: c.deviceID(c.offset + $0)) }
        if c.register {
            let t0 = monotonicNanoseconds()
            let owners = ["identity": "pki-team", "secarch": "security-architecture", "ops": "ot-operations",
                          "procurement": "vendor-management", "business": "plant-manager"]
            var lastReport = t0
            for device in devices {
                let tagged = c.tag != nil && c.offset + device.index < c.tagged
                let attributes = c.site == nil && !tagged ? nil : DeviceAttributes(site: c.site, tags: tagged ? [c.tag!] : nil)
                _ = try admin.call(.deviceAdd, DeviceAddParams(id: device.id.rawValue, deviceClass: "default", owners: owners, attributes: attributes),
                                   as: DeviceView.self)
                let approval = try admin.call(.deviceApprove, DeviceApproveParams(id: device.id.rawValue, tokenTTL: 86400), as: ApprovalResult.self)
                device.token = approval.token
                let now = monotonicNanoseconds()
                if c.progress, now - lastReport > 1_000_000_000 {
                    lastReport = now
                    log(String(format: "[%6.1fs] registering %d/%d", elapsed(now), device.index + 1, c.devices))
                }
            }
            let seconds = Double(monotonicNanoseconds() - t0) / 1e9
            summary.registration = RegistrationFigures(devices: c.devices, seconds: seconds, perSecond: Double(c.devices) / seconds)
            log(String(format: "registered and approved %d devices in %.1f s (%.0f/s, two admin calls each)", c.devices, seconds, Double(c.devices) / seconds))
        }

        // 2. Shards: device i belongs to shard i % threads.
        let shards = try (0..<c.threads).map { n in
            try Shard(number: n, devices: stride(from: n, to: devices.count, by: c.threads).map { devices[$0] }, context: context)
        }
        shards.forEach { $0.start() }
        defer {
            state.setPhase(.stop)
            shards.forEach { $0.waitUntilFinished() }
        }

        // 3. Enrollment, then the renewal rounds.
        var phases: [(SimulationPhase, Int)] = [(.enroll, c.enrollConcurrency)]
        for (i, concurrency) in c.renewalRounds.enumerated() { phases.append((.renew(round: i + 1), concurrency)) }
        var allComplete = true
        for (phase, concurrency) in phases {
            barrier?(phase.label)
            let figures = runPhase(phase, concurrency: concurrency, state: state)
            summary.phases.append(figures)
            if !figures.complete {
                allComplete = false
                break
            }
        }

        // 4. Revocations, one device at a time: admin call -> signed command -> broker refusal.
        if allComplete { barrier?("revoke") }
        if allComplete, c.revocations > 0 {
            state.setPhase(.hold)
            for index in 0..<c.revocations {
                summary.revocations.append(revoke(devices[index].id, index: index, state: state))
            }
        }

        // 5. Hold: online, following commands.
        if allComplete { barrier?("hold") }
        if allComplete, c.holdSeconds > 0 {
            state.setPhase(.hold)
            if barrier == nil, let ready = c.readyFile { _ = FileManager.default.createFile(atPath: ready, contents: nil) }
            let end = monotonicNanoseconds() + UInt64(c.holdSeconds * 1e9)
            while monotonicNanoseconds() < end {
                if let stop = c.stopFile, FileManager.default.fileExists(atPath: stop) { break }
                Thread.sleep(forTimeInterval: min(1, Double(end - monotonicNanoseconds()) / 1e9))
                if c.progress { log(progressLine(state, phase: .hold)) }
            }
        }

        if allComplete { barrier?("end") }
        if c.keepSamples {
            summary.latencySamples = Dictionary(uniqueKeysWithValues: summary.phases.map { ($0.name, state.latencySamples($0.name)) })
        }
        let after = try? admin.call(.status, Empty(), as: ControllerStatus.self)
        summary.register.issuedAfter = after?.issued
        summary.register.certificatesReceived = state.certificatesReceived.load(ordering: .relaxed)
        summary.counters = counters(state)
        summary.errors = state.errors
        summary.errorSamples = state.errorSamples
        summary.complete = allComplete
        return summary
    }

    static func descriptorsNeeded(_ c: SimulationConfiguration) -> Int {
        3 * (c.multiplex > 0 ? c.multiplex + c.revocations : c.devices) + 64
    }

    private func elapsed(_ now: UInt64 = monotonicNanoseconds()) -> Double { Double(now - started) / 1e9 }

    private func runPhase(_ phase: SimulationPhase, concurrency: Int, state: FleetState) -> PhaseFigures {
        let c = configuration
        state.issueSlots.setLimit(concurrency)
        state.phaseDone.store(state.failedDevices.load(ordering: .relaxed), ordering: .relaxed)
        let certificatesBefore = state.certificatesReceived.load(ordering: .relaxed)
        let controllerBefore = c.controllerPID.flatMap(ProcessUsage.sample)
        let brokerBefore = c.brokerPID.flatMap(ProcessUsage.sample)
        let selfBefore = ProcessUsage.selfCPUSeconds()
        let t0 = monotonicNanoseconds()
        state.setPhase(phase)
        let deadline = t0 + UInt64(c.phaseTimeout * 1e9)
        var lastReport = t0
        var complete = true
        while state.phaseDone.load(ordering: .relaxed) < c.devices {
            Thread.sleep(forTimeInterval: 0.02)
            let now = monotonicNanoseconds()
            if c.progress, now - lastReport >= 1_000_000_000 {
                lastReport = now
                log(progressLine(state, phase: phase))
            }
            if now > deadline {
                log("\(phase.label): timed out after \(c.phaseTimeout) s")
                complete = false
                break
            }
        }
        let seconds = Double(monotonicNanoseconds() - t0) / 1e9
        let controllerAfter = c.controllerPID.flatMap(ProcessUsage.sample)
        let brokerAfter = c.brokerPID.flatMap(ProcessUsage.sample)
        let certificates = state.certificatesReceived.load(ordering: .relaxed) - certificatesBefore
        let samples = state.latencySamples(phase.label)
        var figures = PhaseFigures(name: phase.label, concurrency: concurrency, certificates: certificates, seconds: seconds,
                                   perSecond: Double(certificates) / seconds, complete: complete && state.failedDevices.load(ordering: .relaxed) == 0)
        figures.p50Ms = Percentile.of(samples, 50).map { $0 * 1000 }
        figures.p99Ms = Percentile.of(samples, 99).map { $0 * 1000 }
        figures.maxMs = samples.max().map { $0 * 1000 }
        figures.simulatorCPUSeconds = ProcessUsage.selfCPUSeconds() - selfBefore
        if let before = controllerBefore, let after = controllerAfter {
            figures.controllerCPUSeconds = after.cpuSeconds - before.cpuSeconds
            if certificates > 0 { figures.controllerCPUMsPerCertificate = (after.cpuSeconds - before.cpuSeconds) * 1000 / Double(certificates) }
            figures.controllerRSSKiB = after.rssKiB
        }
        if let before = brokerBefore, let after = brokerAfter {
            figures.brokerCPUSeconds = after.cpuSeconds - before.cpuSeconds
            figures.brokerRSSKiB = after.rssKiB
        }
        log(String(format: "%@: %d certificates in %.2f s = %.0f/s at concurrency %d; p50 %.1f ms, p99 %.1f ms%@", phase.label, certificates,
                   seconds, figures.perSecond, concurrency, figures.p50Ms ?? 0, figures.p99Ms ?? 0,
                   figures.controllerCPUMsPerCertificate.map { String(format: "; controller %.3f ms CPU/certificate", $0) } ?? ""))
        return figures
    }

    private func revoke(_ id: DeviceID, index: Int, state: FleetState) -> RevocationFigures {
        var figures = RevocationFigures(device: id.rawValue)
        let t0 = monotonicNanoseconds()
        state.noteRevocationStart(device: index, at: t0)
        do {
            let result = try admin.call(.deviceRevoke, RevokeParams(id: id.rawValue, reason: "keyCompromise"), as: RevokeResult.self)
            figures.adminCallSeconds = Double(monotonicNanoseconds() - t0) / 1e9
            figures.brokerReloaded = result.brokerReloaded
            figures.commandSent = result.commandSent
        } catch {
            figures.error = "\(error)"
            return figures
        }
        let deadline = t0 + 35_000_000_000
        while monotonicNanoseconds() < deadline {
            if let timing = state.revocation(device: index), timing.brokerRefused != nil || timing.refusalReason != nil {
                figures.commandVerifiedSeconds = timing.commandVerified
                figures.brokerRefusedSeconds = timing.brokerRefused
                figures.refusal = timing.refusalReason
                break
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
        if figures.brokerRefusedSeconds == nil {
            figures.commandVerifiedSeconds = state.revocation(device: index)?.commandVerified
            figures.error = "no broker refusal observed within 35 s"
        }
        log(String(format: "revoked %@: command verified after %.0f ms, broker refused after %.0f ms", id.rawValue,
                   (figures.commandVerifiedSeconds ?? -1) * 1000, (figures.brokerRefusedSeconds ?? -1) * 1000))
        return figures
    }

    private func progressLine(_ state: FleetState, phase: SimulationPhase) -> String {
        String(format: "[%6.1fs] %@ enrolled=%d online=%d renewed=%d rotated=%d revoked=%d in-flight=%d failed=%d conn-errors=%d retries=%d",
               elapsed(), phase.label, state.enrolled.load(ordering: .relaxed), state.online.load(ordering: .relaxed),
               state.renewed.load(ordering: .relaxed), state.rotationsFollowed.load(ordering: .relaxed),
               state.revocationsFollowed.load(ordering: .relaxed), state.issueSlots.current, state.failedDevices.load(ordering: .relaxed),
               state.connectionErrors.load(ordering: .relaxed), state.requestRetries.load(ordering: .relaxed))
    }

    private func counters(_ state: FleetState) -> [String: Int] {
        [
            "enrolled": state.enrolled.load(ordering: .relaxed),
            "online": state.online.load(ordering: .relaxed),
            "renewed": state.renewed.load(ordering: .relaxed),
            "failedDevices": state.failedDevices.load(ordering: .relaxed),
            "connectionErrors": state.connectionErrors.load(ordering: .relaxed),
            "requestRetries": state.requestRetries.load(ordering: .relaxed),
            "commandsReceived": state.commandsReceived.load(ordering: .relaxed),
            "commandsRefused": state.commandsRefused.load(ordering: .relaxed),
            "rotationsFollowed": state.rotationsFollowed.load(ordering: .relaxed),
            "revocationsFollowed": state.revocationsFollowed.load(ordering: .relaxed),
            "certificatesReceived": state.certificatesReceived.load(ordering: .relaxed),
        ]
    }
}
