import Agent
import Foundation
import Shared

/// Settings every shard shares (read-only).
struct ShardContext: Sendable {
    let configuration: SimulationConfiguration
    let trustAnchors: [Certificate]
    let trustStore: TLSTrustStore
    /// Server-auth-only TLS for the bootstrap listener, shared by all devices.
    let bootstrapTLS: TLSClientContext
    let trustDomain: String
    let state: FleetState
    static let agentVersion = "fleetsim-0.1"
}

/// One event-loop thread driving a share of the virtual devices: their
/// connections (epoll over the libmosquitto sockets), the protocol steps and
/// all of their crypto. Nothing here blocks except `epoll_wait`.
///
/// `@unchecked Sendable`: the shard is handed to its thread once; after
/// `start()` all mutable state (devices, queues, poller) is touched only by
/// that thread. Cross-thread communication goes through `FleetState`.
final class Shard: @unchecked Sendable {
    let number: Int
    private let context: ShardContext
    private var devices: [VirtualDevice]
    private let poller: MQTTPoller
    private var issueQueue = IndexQueue()
    private var connectQueue = IndexQueue()
    /// Devices with a `wakeAt` (backoff, probes).
    private var sleepers: Set<Int> = []
    private var seenGeneration = -1
    private var phase = SimulationPhase.setup
    private var lastSweep: UInt64 = 0
    private let finished = DispatchSemaphore(value: 0)
    /// Mode B: the shared connections and a device lookup by id.
    private var muxes: [Multiplexer] = []
    private var deviceByID: [Substring: Int] = [:]
    private var multiplexed: Bool { !muxes.isEmpty }
    private var state: FleetState { context.state }
    private var configuration: SimulationConfiguration { context.configuration }

    init(number: Int, devices: [VirtualDevice], context: ShardContext) throws {
        self.number = number
        self.devices = devices
        for (local, device) in devices.enumerated() { device.local = local }
        self.context = context
        let c = context.configuration
        if c.multiplex > 0, !devices.isEmpty {
            let count = min(devices.count, max(1, c.multiplex / c.threads))
            muxes = (0..<count).map { Multiplexer(number: $0, clientID: "fleetsim-mux-\(c.offset)-\(number)-\($0)") }
            for device in devices {
                device.mux = device.local % count
                muxes[device.mux].devices.append(device.local)
                deviceByID[Substring(device.id.rawValue)] = device.local
            }
        }
        self.poller = try MQTTPoller()
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "fleetsim-\(number)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    func waitUntilFinished() { finished.wait() }

    // MARK: - Loop

    private func run() {
        for mux in muxes { connectMux(mux) }
        while true {
            let generation = state.phaseGeneration.load(ordering: .sequentiallyConsistent)
            if generation != seenGeneration {
                seenGeneration = generation
                phase = state.phase
                if phase == .stop { break }
                phaseChanged()
            }
            startQueuedWork()
            let now = monotonicNanoseconds()
            wakeSleepers(now: now)
            if now &- lastSweep >= 1_000_000_000 {
                lastSweep = now
                sweep(now: now)
            }
            for ready in poller.wait(timeoutMilliseconds: 20) {
                if Int(ready.token) >= devices.count {
                    let m = Int(ready.token) - devices.count
                    guard m < muxes.count, let connection = muxes[m].connection else { continue }
                    var ok = true
                    if ready.readable || ready.failed { ok = connection.read() }
                    if ok, ready.writable { ok = connection.write() }
                    processMux(muxes[m])
                    continue
                }
                let index = Int(ready.token)
                guard index < devices.count, let connection = devices[index].connection else { continue }
                let device = devices[index]
                var ok = true
                if ready.readable || ready.failed { ok = connection.read() }
                if ok, ready.writable { ok = connection.write() }
                if ok, ready.failed, !device.connackReceived, connection.socket >= 0 {
                    // A refused connect that libmosquitto 2.0.11 would not report.
                    _ = connection.read()
                }
                process(device)
            }
        }
        for device in devices where device.connection != nil { closeConnection(device, graceful: true) }
        for mux in muxes { closeMux(mux) }
    }

    private func phaseChanged() {
        switch phase {
        case .enroll:
            for device in devices where device.stage == .idle { wantIssue(device) }
        case .renew(let round):
            for device in devices where device.stage == .ready && device.renewalsDone < round && device.pending == nil { wantIssue(device) }
        default:
            break
        }
    }

    private func startQueuedWork() {
        // A device may sit in a queue twice or no longer want what it queued
        // for (its connection dropped meanwhile): skip those entries.
        while let first = issueQueue.first {
            let device = devices[first]
            guard device.stage == .queuedForIssue, device.pending == nil, !device.holdsIssueSlot else {
                _ = issueQueue.popFirst()
                continue
            }
            guard state.issueSlots.tryAcquire() else { break }
            _ = issueQueue.popFirst()
            device.holdsIssueSlot = true
            beginRequest(device)
        }
        while let first = connectQueue.first {
            let device = devices[first]
            guard device.stage == .queuedForConnect, device.connection == nil, !device.holdsConnectSlot else {
                _ = connectQueue.popFirst()
                continue
            }
            guard state.connectSlots.tryAcquire() else { break }
            _ = connectQueue.popFirst()
            device.holdsConnectSlot = true
            openConnection(device)
        }
    }

    private func wakeSleepers(now: UInt64) {
        for mux in muxes where mux.connection == nil && mux.wakeAt <= now { connectMux(mux) }
        guard !sleepers.isEmpty else { return }
        for index in sleepers where devices[index].wakeAt <= now {
            sleepers.remove(index)
            let device = devices[index]
            switch device.stage {
            case .backoff:
                wantConnect(device, device.link)
            case .probing:
                if now &- device.probeStartedAt > 30_000_000_000 {
                    state.recordError("revocation_not_enforced", "\(device.id): the broker still accepts the revoked certificate after 30 s")
                    device.stage = .revoked
                } else {
                    wantConnect(device, .probe)
                }
            default: break
            }
        }
    }

    /// Once a second: keepalive, request re-sends, connect timeouts.
    private func sweep(now: UInt64) {
        let timeout = UInt64(configuration.requestTimeout * 1e9)
        for mux in muxes {
            guard let connection = mux.connection else { continue }
            if !connection.misc() {
                processMux(mux)
            } else if !mux.ready, now &- mux.connectStartedAt > 60_000_000_000 {
                muxLost(mux, "not ready within 60 s")
            } else {
                syncMux(mux)
            }
        }
        for device in devices {
            guard let connection = device.connection else {
                if multiplexed, device.stage == .waitingForReply, let pending = device.pending, now &- pending.lastSentAt > timeout {
                    // Never sent (multiplexer not ready yet) is not a retry.
                    if pending.firstSentAt != 0 { state.requestRetries.add(1, ordering: .relaxed) }
                    publishPending(device)
                }
                continue
            }
            if !connection.misc() {
                process(device)
                continue
            }
            if device.stage == .connecting || device.stage == .subscribing, now &- device.connectStartedAt > 15_000_000_000 {
                connectionLost(device, "no CONNACK/SUBACK within 15 s")
                continue
            }
            if device.stage == .closing, now &- device.probeStartedAt > 2_000_000_000 {
                finishRevocation(device)
                continue
            }
            if device.stage == .waitingForReply, let pending = device.pending, now &- pending.lastSentAt > timeout {
                state.requestRetries.add(1, ordering: .relaxed)
                publishPending(device)
            }
            syncRegistration(device)
        }
    }

    // MARK: - Steps

    private func wantIssue(_ device: VirtualDevice) {
        guard device.stage != .queuedForIssue else { return }
        device.stage = .queuedForIssue
        issueQueue.append(device.local)
    }

    private func wantConnect(_ device: VirtualDevice, _ link: VirtualDevice.Link) {
        device.link = link
        guard device.stage != .queuedForConnect else { return }
        device.stage = .queuedForConnect
        connectQueue.append(device.local)
    }

    private func sleep(_ device: VirtualDevice, seconds: Double, stage: VirtualDevice.Stage) {
        device.stage = stage
        device.wakeAt = monotonicNanoseconds() + UInt64(max(0, seconds) * 1e9)
        sleepers.insert(device.local)
    }

    /// Makes a new key and request (enrollment if the device has no certificate yet).
    private func beginRequest(_ device: VirtualDevice, reason: String = "scheduled", campaign: String? = nil) {
        do {
            let key = try PrivateKey.generateP256()
            let csr = try CertificateSigningRequest.make(commonName: device.id.rawValue, key: key).pem
            let requestID = makeRequestID()
            if device.key == nil {
                guard let token = device.token else { return fail(device, "no_token", "device has no enrollment token") }
                let request = EnrollRequest(requestId: requestID, deviceId: device.id, csr: csr, token: token, agentVersion: ShardContext.agentVersion)
                device.pending = PendingRequest(kind: .enroll, requestID: requestID, key: key, topic: device.topics.enrollRequest, payload: WireCodec.encode(request))
                if multiplexed {
                    publishPending(device)
                } else {
                    wantConnect(device, .bootstrap)
                }
            } else {
                let request = RenewRequest(requestId: requestID, csr: csr, reason: reason, campaignId: campaign, currentSerial: device.serial)
                device.pending = PendingRequest(kind: .renew(reason: reason), requestID: requestID, key: key, topic: device.topics.renewRequest,
                                                payload: WireCodec.encode(request))
                if multiplexed {
                    publishPending(device)
                } else if device.connection != nil, device.link == .operational, device.stage == .ready || device.stage == .queuedForIssue {
                    publishPending(device)
                } else if device.connection == nil {
                    wantConnect(device, .operational)
                }
            }
        } catch {
            fail(device, "key_or_csr", "\(error)")
        }
    }

    private func openConnection(_ device: VirtualDevice) {
        do {
            let tls: TLSClientContext
            var will: MQTTMessage?
            let port: Int
            switch device.link {
            case .bootstrap:
                tls = context.bootstrapTLS
                port = configuration.bootstrapPort
            case .operational, .probe:
                guard let key = device.key else { return fail(device, "no_key", "no credential to connect with") }
                tls = try TLSClientContext(trust: context.trustStore, serverName: configuration.host, chain: device.chain, key: key)
                port = configuration.operationalPort
                if device.link == .operational {
                    will = MQTTMessage(topic: device.topics.state,
                                       payload: WireCodec.encode(DeviceStateReport(state: "offline", agentVersion: ShardContext.agentVersion)),
                                       qos: 1, retain: true)
                }
            }
            let connection = try MQTTLoopConnection(clientID: device.id.rawValue, tls: tls, keepAlive: configuration.keepAlive, will: will,
                                                    tcpNoDelay: configuration.tcpNoDelay)
            device.connection = connection
            device.connackReceived = false
            device.subscribeMID = -1
            device.connectStartedAt = monotonicNanoseconds()
            device.stage = .connecting
            try connection.connect(host: configuration.host, port: port)
            process(device)
        } catch {
            connectionLost(device, "\(error)")
        }
    }

    /// The connection a device's messages go out on: its own, or its multiplexer's once that is ready.
    private func transport(_ device: VirtualDevice) -> MQTTLoopConnection? {
        if multiplexed, device.link != .probe {
            let mux = muxes[device.mux]
            return mux.ready ? mux.connection : nil
        }
        return device.connection
    }

    private func publishPending(_ device: VirtualDevice) {
        guard var pending = device.pending else { return }
        guard let connection = transport(device) else {
            // Multiplexer not ready: it publishes the pending requests when it is.
            device.stage = .waitingForReply
            return
        }
        do {
            try connection.publish(topic: pending.topic, payload: pending.payload, qos: 1)
            let now = monotonicNanoseconds()
            if pending.firstSentAt == 0 { pending.firstSentAt = now }
            pending.lastSentAt = now
            pending.sentOnThisConnection = true
            device.pending = pending
            device.stage = .waitingForReply
            if multiplexed { syncMux(muxes[device.mux]) } else { syncRegistration(device) }
        } catch {
            if multiplexed { muxLost(muxes[device.mux], "publish: \(error)") } else { connectionLost(device, "publish: \(error)") }
        }
    }

    // MARK: - Events

    /// Handles what the device's connection collected, then keeps its epoll registration in step.
    private func process(_ device: VirtualDevice) {
        guard let connection = device.connection else { return }
        for event in connection.takeEvents() {
            guard device.connection === connection else { return }
            switch event {
            case .connack(let code):
                if code != 0 {
                    connectionLost(device, "CONNACK refused, reason 0x\(String(code, radix: 16))")
                } else {
                    connected(device)
                }
            case .subscribed(let mid, let granted):
                guard mid == device.subscribeMID else { continue }
                if let refused = granted.first(where: { $0 >= 0x80 }) {
                    connectionLost(device, "subscription refused 0x\(String(refused, radix: 16))")
                } else {
                    subscribed(device)
                }
            case .message(let message):
                handle(message, device)
            case .published(let mid):
                if mid == device.closeAfterMID { finishRevocation(device) }
            case .disconnected(let reason):
                connectionLost(device, reason)
            }
        }
        if device.connection === connection { syncRegistration(device) }
    }

    private func connected(_ device: VirtualDevice) {
        guard let connection = device.connection else { return }
        device.connackReceived = true
        switch device.link {
        case .probe:
            // The broker still accepts the revoked certificate: try again shortly.
            closeConnection(device, graceful: true)
            sleep(device, seconds: 0.02, stage: .probing)
            return
        case .bootstrap, .operational:
            let filters = device.link == .bootstrap ? [device.topics.enrollResponse] : [device.topics.renewResponse, device.topics.command]
            do {
                device.subscribeMID = try connection.subscribe(filters, qos: 1)
                device.stage = .subscribing
            } catch {
                connectionLost(device, "subscribe: \(error)")
            }
        }
    }

    /// After a rotation, the first state report carries the new serial: the
    /// event the campaign benchmark times (on the new session in mode A, on
    /// the shared connection in mode B).
    private func noteRotationReported(_ device: VirtualDevice) {
        guard device.rotationToReport else { return }
        device.rotationToReport = false
        state.eventLog?.note("rotated", device.id)
    }

    private func subscribed(_ device: VirtualDevice) {
        releaseConnectSlot(device)
        device.consecutiveFailures = 0
        if device.link == .operational {
            // Like the agent: the state (with the serial in use) after every connect,
            // so after a rotation it reports the new certificate from the new session.
            publishState(device, "active")
            noteRotationReported(device)
        }
        if device.pending != nil {
            publishPending(device)
        } else if device.link == .operational {
            device.stage = .ready
            reachedReady(device)
        }
    }

    /// Counts phase progress and starts the next renewal when one is due.
    private func reachedReady(_ device: VirtualDevice) {
        if device.rotationDue, device.pending == nil {
            device.rotationDue = false
            device.stage = .queuedForIssue
            let campaign = device.rotationCampaign
            device.rotationCampaign = nil
            beginRequest(device, reason: campaign == nil ? "forced" : "campaign", campaign: campaign)
            return
        }
        if !device.onlineCounted {
            device.onlineCounted = true
            state.online.add(1, ordering: .relaxed)
        }
        if !device.enrollCounted {
            device.enrollCounted = true
            state.phaseDone.add(1, ordering: .relaxed)
        }
        if case .renew(let round) = phase {
            if device.renewalsDone >= round, device.roundCounted < round {
                device.roundCounted = round
                state.phaseDone.add(1, ordering: .relaxed)
            } else if device.renewalsDone < round {
                wantIssue(device)
            }
        }
    }

    private func handle(_ message: MQTTMessage, _ device: VirtualDevice) {
        switch message.topic {
        case device.topics.enrollResponse, device.topics.renewResponse:
            handleReply(message.payload, device)
        case device.topics.command:
            handleCommand(message.payload, device)
        default:
            break
        }
    }

    private func handleReply(_ payload: [UInt8], _ device: VirtualDevice) {
        guard let pending = device.pending, let reply = try? WireCodec.decode(CertificateReply.self, from: payload),
            reply.requestId == pending.requestID
        else { return }  // stale, duplicate or not ours: ignored, as the agent does
        switch ReplyValidator.check(reply, pendingKey: pending.key, device: device.id, trust: context.trustAnchors, now: Date()) {
        case .issued(let chain):
            let seconds = Double(monotonicNanoseconds() &- pending.firstSentAt) / 1e9
            releaseIssueSlot(device)
            device.pending = nil
            device.key = pending.key
            device.chain = chain
            device.serial = reply.serial ?? chain[0].serialHex
            device.notAfter = reply.notAfter ?? Int64(chain[0].notAfter.timeIntervalSince1970)
            state.certificatesReceived.add(1, ordering: .relaxed)
            switch pending.kind {
            case .enroll:
                device.enrolledIssuedAt = reply.issuedAt ?? 0
                state.enrolled.add(1, ordering: .relaxed)
                state.recordLatency("enroll", seconds: seconds)
            case .renew(let reason):
                if reason == "forced" || reason == "campaign" {
                    device.rotationToReport = true
                    state.rotationsFollowed.add(1, ordering: .relaxed)
                    state.recordLatency("rotate", seconds: seconds)
                } else {
                    device.renewalsDone += 1
                    state.renewed.add(1, ordering: .relaxed)
                    state.recordLatency(phase.label, seconds: seconds)
                }
            }
            if multiplexed {
                // Mode B: no connection of its own to renew; report and carry on.
                device.stage = .ready
                publishState(device, "active")
                noteRotationReported(device)
                reachedReady(device)
            } else {
                // Like the agent: the session continues on the new certificate.
                closeConnection(device, graceful: true)
                wantConnect(device, .operational)
            }
        case .refused(let error, _):
            releaseIssueSlot(device)
            device.pending = nil
            fail(device, error.code, error.message)
        case .invalid(let why):
            releaseIssueSlot(device)
            device.pending = nil
            fail(device, "invalid_reply", why)
        }
    }

    /// Verifies a command exactly as the agent does (Shared's CommandVerifier,
    /// then the enrollment-age check), acknowledges, then acts.
    private func handleCommand(_ payload: [UInt8], _ device: VirtualDevice) {
        state.commandsReceived.add(1, ordering: .relaxed)
        let compact = String(decoding: payload, as: UTF8.self)
        let verifier = CommandVerifier(trustAnchors: context.trustAnchors, trustDomain: context.trustDomain, device: device.id)
        let verdict = verifier.verify(compact, now: Date(), lastSeq: device.lastSeq)
        switch verdict {
        case .failure(let refusal):
            state.commandsRefused.add(1, ordering: .relaxed)
            state.recordError("command_refused_\(refusal.code)", refusal.message)
            publishAck(device, CommandAck(jti: refusal.jti, outcome: "refused", code: refusal.code, message: refusal.message))
        case .success(let claims) where device.enrolledIssuedAt > 0 && claims.iat < device.enrolledIssuedAt:
            // Check 15 of protocol.md 6.4, as the agent does after CommandVerifier.
            state.commandsRefused.add(1, ordering: .relaxed)
            state.recordError("command_refused_stale", "command predates this enrollment")
            publishAck(device, CommandAck(jti: claims.jti, outcome: "refused", code: "stale", message: "command predates this enrollment"))
        case .success(let claims):
            device.lastSeq = claims.seq  // "persisted" before acting
            switch claims.cmd {
            case "ping":
                publishAck(device, CommandAck(jti: claims.jti, outcome: "done"))
            case "rotate":
                // As the agent: ack, renew at once (reason `campaign` with the campaign id,
                // which the controller needs to count the rotation for the campaign), then
                // reconnect on the new certificate and report its serial (subscribed()).
                publishAck(device, CommandAck(jti: claims.jti, outcome: "done"))
                state.eventLog?.note("command-rotate", device.id)
                let campaign = claims.args?["campaign"]
                if device.pending == nil, device.stage == .ready {
                    device.stage = .queuedForIssue
                    beginRequest(device, reason: campaign == nil ? "forced" : "campaign", campaign: campaign)
                } else if device.pending == nil || device.pending?.kind == .renew(reason: "scheduled") {
                    device.rotationDue = true
                    device.rotationCampaign = campaign
                }
            case "revoke":
                state.eventLog?.note("command-revoke", device.id)
                if let start = state.revocationStart(device: device.index) {
                    let seconds = Double(monotonicNanoseconds() &- start) / 1e9
                    state.updateRevocation(device: device.index) { $0.commandVerified = seconds }
                }
                publishAck(device, CommandAck(jti: claims.jti, outcome: "done"))
                if device.pending != nil { releaseIssueSlot(device); device.pending = nil }
                // Disconnect once the broker has the state report (a close
                // right after the publish can cost the report and fire the
                // last will instead).
                device.closeAfterMID = publishState(device, "revoked") ?? -1
                device.stage = .closing
                device.probeStartedAt = monotonicNanoseconds()
                // A shared connection stays open: nothing to wait for.
                if device.closeAfterMID < 0 || multiplexed { finishRevocation(device) }
            case "bundle":
                // CA rotation: acknowledged as installed. The simulated devices share one set of
                // trust anchors (the root is in it, so chains from a new issuing CA verify as they would on an agent).
                publishAck(device, CommandAck(jti: claims.jti, outcome: "done"))
            case "retire":
                publishAck(device, CommandAck(jti: claims.jti, outcome: "done"))
                publishState(device, "retired")
                closeConnection(device, graceful: true)
                device.key = nil
                device.chain = []
                device.stage = .revoked
            default:
                publishAck(device, CommandAck(jti: claims.jti, outcome: "refused", code: "not_supported", message: "\(claims.cmd) is not simulated"))
            }
        }
    }

    /// Revoked: drop the session, keep the revoked credential only to watch the broker refuse it.
    private func finishRevocation(_ device: VirtualDevice) {
        device.closeAfterMID = -1
        closeConnection(device, graceful: true)
        device.link = .probe
        sleep(device, seconds: 0, stage: .probing)
    }

    private func publishAck(_ device: VirtualDevice, _ ack: CommandAck) {
        _ = try? transport(device)?.publish(topic: device.topics.ack, payload: WireCodec.encode(ack), qos: 1)
    }

    @discardableResult
    private func publishState(_ device: VirtualDevice, _ value: String) -> Int32? {
        let report = DeviceStateReport(state: value, serial: device.serial, notAfter: device.notAfter, agentVersion: ShardContext.agentVersion,
                                       time: Int64(Date().timeIntervalSince1970))
        return try? transport(device)?.publish(topic: device.topics.state, payload: WireCodec.encode(report), qos: 1, retain: true)
    }

    // MARK: - Multiplexers (mode B)

    private func connectMux(_ mux: Multiplexer) {
        do {
            let connection = try MQTTLoopConnection(clientID: mux.clientID, tls: context.bootstrapTLS, keepAlive: configuration.keepAlive,
                                                    tcpNoDelay: configuration.tcpNoDelay)
            mux.connection = connection
            mux.ready = false
            mux.connackReceived = false
            mux.pendingSubscriptions = []
            mux.connectStartedAt = monotonicNanoseconds()
            try connection.connect(host: configuration.host, port: configuration.multiplexPort)
            processMux(mux)
        } catch {
            muxLost(mux, "\(error)")
        }
    }

    private func processMux(_ mux: Multiplexer) {
        guard let connection = mux.connection else { return }
        for event in connection.takeEvents() {
            guard mux.connection === connection else { return }
            switch event {
            case .connack(let code):
                guard code == 0 else { muxLost(mux, "CONNACK refused, reason 0x\(String(code, radix: 16))"); return }
                mux.connackReceived = true
                // Every device's reply and command topics, 100 filters per SUBSCRIBE.
                let filters = mux.devices.flatMap { i in
                    [devices[i].topics.enrollResponse, devices[i].topics.renewResponse, devices[i].topics.command]
                }
                do {
                    for start in stride(from: 0, to: filters.count, by: 100) {
                        mux.pendingSubscriptions.insert(try connection.subscribe(Array(filters[start..<min(start + 100, filters.count)]), qos: 1))
                    }
                } catch {
                    muxLost(mux, "subscribe: \(error)")
                    return
                }
            case .subscribed(let mid, let granted):
                guard mux.pendingSubscriptions.remove(mid) != nil else { continue }
                if let refused = granted.first(where: { $0 >= 0x80 }) {
                    muxLost(mux, "subscription refused 0x\(String(refused, radix: 16))")
                    return
                }
                if mux.pendingSubscriptions.isEmpty {
                    mux.ready = true
                    mux.failures = 0
                    // Requests made while it was (re)connecting go out now.
                    for i in mux.devices where devices[i].pending != nil && devices[i].stage == .waitingForReply {
                        publishPending(devices[i])
                    }
                }
            case .message(let message):
                if let id = deviceIDLevel(of: message.topic), let local = deviceByID[id] {
                    handle(message, devices[local])
                }
            case .published:
                break
            case .disconnected(let reason):
                muxLost(mux, reason)
                return
            }
        }
        syncMux(mux)
    }

    private func muxLost(_ mux: Multiplexer, _ reason: String) {
        closeMux(mux)
        state.connectionErrors.add(1, ordering: .relaxed)
        state.recordError("connection", "\(mux.clientID): \(reason)")
        mux.failures += 1
        for i in mux.devices where devices[i].pending != nil {
            devices[i].pending?.sentOnThisConnection = false
        }
        let cap = min(10, 0.2 * pow(2, Double(mux.failures)))
        mux.wakeAt = monotonicNanoseconds() + UInt64(Double.random(in: 0.2...max(0.2, cap)) * 1e9)
    }

    private func closeMux(_ mux: Multiplexer) {
        guard let connection = mux.connection else { return }
        if mux.registeredFD >= 0, connection.socket == mux.registeredFD { poller.remove(mux.registeredFD) }
        mux.registeredFD = -1
        mux.registeredWrite = false
        if connection.socket >= 0 {
            connection.disconnect()
            _ = connection.write()
        }
        mux.connection = nil
        mux.ready = false
    }

    private func syncMux(_ mux: Multiplexer) {
        guard let connection = mux.connection else { return }
        let fd = connection.socket
        let write = connection.wantsWrite
        let token = UInt64(devices.count + mux.number)
        if fd != mux.registeredFD {
            mux.registeredFD = -1
            if fd >= 0, poller.add(fd, token: token, write: write) {
                mux.registeredFD = fd
                mux.registeredWrite = write
            }
        } else if fd >= 0, write != mux.registeredWrite {
            if poller.modify(fd, token: token, write: write) { mux.registeredWrite = write }
        }
    }

    // MARK: - Failures and cleanup

    private func connectionLost(_ device: VirtualDevice, _ reason: String) {
        let link = device.link
        let beforeConnack = !device.connackReceived
        closeConnection(device, graceful: false)
        if device.stage == .closing {
            // Lost while flushing the revoked state report: go on to the probe.
            device.closeAfterMID = -1
            device.link = .probe
            sleep(device, seconds: 0, stage: .probing)
            return
        }
        if link == .probe {
            if beforeConnack {
                // The broker refused the revoked certificate: revocation enforced.
                let start = state.revocationStart(device: device.index)
                state.updateRevocation(device: device.index) { timing in
                    if let start { timing.brokerRefused = Double(monotonicNanoseconds() &- start) / 1e9 }
                    timing.refusalReason = String(reason.prefix(200))
                }
                state.revocationsFollowed.add(1, ordering: .relaxed)
                state.eventLog?.note("refused", device.id)
                device.key = nil
                device.chain = []
                device.stage = .revoked
            } else {
                sleep(device, seconds: 0.02, stage: .probing)
            }
            return
        }
        guard device.stage != .revoked, device.stage != .failed else { return }
        state.connectionErrors.add(1, ordering: .relaxed)
        state.recordError("connection", "\(device.id) \(link): \(reason)")
        device.consecutiveFailures += 1
        if device.consecutiveFailures > 8 {
            if device.pending != nil { releaseIssueSlot(device); device.pending = nil }
            return fail(device, "connection_failed", reason)
        }
        if var pending = device.pending {
            pending.sentOnThisConnection = false
            device.pending = pending
        }
        // Exponential backoff with full jitter, 0.2 s ... 10 s.
        let cap = min(10, 0.2 * pow(2, Double(device.consecutiveFailures)))
        sleep(device, seconds: Double.random(in: 0.2...max(0.2, cap)), stage: .backoff)
    }

    private func fail(_ device: VirtualDevice, _ code: String, _ message: String) {
        closeConnection(device, graceful: true)
        releaseIssueSlot(device)
        device.stage = .failed
        state.recordError(code, "\(device.id): \(message)")
        state.failedDevices.add(1, ordering: .relaxed)
        state.phaseDone.add(1, ordering: .relaxed)
    }

    private func releaseIssueSlot(_ device: VirtualDevice) {
        if device.holdsIssueSlot {
            device.holdsIssueSlot = false
            state.issueSlots.release()
        }
    }

    private func releaseConnectSlot(_ device: VirtualDevice) {
        if device.holdsConnectSlot {
            device.holdsConnectSlot = false
            state.connectSlots.release()
        }
    }

    /// Drops the device's connection: epoll registration first (while the
    /// descriptor is still ours), then DISCONNECT if asked, then the handle.
    private func closeConnection(_ device: VirtualDevice, graceful: Bool) {
        releaseConnectSlot(device)
        guard let connection = device.connection else { return }
        if device.registeredFD >= 0, connection.socket == device.registeredFD {
            poller.remove(device.registeredFD)
        }
        device.registeredFD = -1
        device.registeredWrite = false
        if graceful, connection.socket >= 0 {
            connection.disconnect()
            _ = connection.write()
        }
        device.connection = nil
        device.connackReceived = false
    }

    /// Keeps the epoll registration equal to the connection's socket and write interest.
    private func syncRegistration(_ device: VirtualDevice) {
        guard let connection = device.connection else { return }
        let fd = connection.socket
        let write = connection.wantsWrite
        let token = UInt64(device.local)
        if fd != device.registeredFD {
            // A closed descriptor left epoll by itself; never DEL a number that may be someone else's now.
            device.registeredFD = -1
            if fd >= 0, poller.add(fd, token: token, write: write) {
                device.registeredFD = fd
                device.registeredWrite = write
            }
        } else if fd >= 0, write != device.registeredWrite {
            if poller.modify(fd, token: token, write: write) { device.registeredWrite = write }
        }
    }
}

/// A FIFO of device indices without O(n) removal at the front.
struct IndexQueue {
    private var items: [Int] = []
    private var head = 0

    var first: Int? { head < items.count ? items[head] : nil }

    mutating func append(_ value: Int) { items.append(value) }

    mutating func popFirst() -> Int? {
        guard head < items.count else { return nil }
        defer {
            head += 1
            if head > 1024, head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
        return items[head]
    }
}
