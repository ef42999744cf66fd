#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared
#if canImport(Glibc)
import Glibc
#endif

enum AgentEvent: Sendable {
    case mqtt(MQTTEvent)
    /// The renewal timer fired; the number tells stale timers apart.
    case renewDue(Int)
    case stop(String)
    /// A hook ended (it runs on its own thread).
    case hookFinished(HookOutcome)
    /// Time to tell systemd's watchdog the event loop is alive.
    case watchdog
}

/// `lanyard-agent run`: holds the device credential, renews it before it
/// expires, reports state, and obeys signed commands. One task consumes one
/// merged event stream, so the state below is never touched concurrently.
package final class AgentRunner {
    let configuration: AgentConfiguration
    let store: CredentialStore
    let log = Logger(component: "agent")
    /// The configured trust_bundle, or the one a `bundle` command installed in the state directory.
    var trust: [Certificate]
    let notifier = SystemdNotifier()
    let stop: ShutdownSignal

    var state: AgentState
    var credential: Credential?
    var client: MQTTClient?
    var pending: PendingRenewal?
    var renewalDeadline: Date?
    var retryAttempt = 0
    var timerGeneration = 0
    var timer: Task<Void, Never>?
    var continuation: AsyncStream<AgentEvent>.Continuation?
    var rng = SystemRandomNumberGenerator()
    /// The generation recovered from disk at start-up: its measured skew may be stale (AgentRunner+Clock).
    var recoveredGeneration: Int?
    /// The swapped-in generation awaiting its first broker connection.
    var fallback = CredentialFallback()
    /// Enrollment installed a credential: run on_renew once the loop is up.
    var enrollmentHookPending = false
    /// A refused re-enrollment is not asked again before this (device clock).
    var reenrollNotBefore: Date?
    /// Releases what the last connection's start-up left resident (IdleMemory).
    var idleTrim: Task<Void, Never>?

    struct PendingRenewal {
        var request: RenewRequest
        var key: PrivateKey
    }

    /// Exit statuses for systemd and scripts.
    package enum Exit: Int32 {
        case stopped = 0, failure = 1, enrollmentRefused = 3, retired = 4, configuration = 78
    }

    package init(configuration: AgentConfiguration, stop: ShutdownSignal) throws {
        self.configuration = configuration
        self.stop = stop
        store = try CredentialStore(directory: configuration.stateDirectory, deviceID: configuration.deviceID)
        let bundle = try AtomicFile.readText(configuration.trustBundle, limit: 1 << 20)
        trust = try Certificate.chain(fromPEM: bundle)
        if let installed = TrustBundleUpdate.load(stateDirectory: configuration.stateDirectory) { trust = installed }
        state = AgentState.load(from: configuration.stateDirectory)
    }

    package func run() async throws -> Exit {
        if RetiredMarker.exists(in: configuration.stateDirectory) {
            log.warning("this device was retired; not starting (exit 4 keeps systemd from restarting it)", ["device": configuration.deviceID.rawValue])
            notifier.notify("STATUS=retired")
            return .retired
        }
        if state.state == "revoked", let written = tokenWrittenAfterRevocation() {
            // An operator approved the device again and installed a new token: enroll afresh, with a new key.
            log.notice("a new enrollment token was installed after the revocation; enrolling again", ["token_written": String(written)])
            updateState { $0.state = "enrolling"; $0.lastError = nil; $0.revokedAt = nil; $0.enrolledAt = nil }
        }
        if state.state == "revoked" {
            log.warning("this device's credential was revoked; waiting for an operator (re-enrollment)", ["device": configuration.deviceID.rawValue])
            notifier.notify("READY=1\nSTATUS=revoked")
            _ = await stop.wait()
            return .stopped
        }
        let (recovered, repairs) = recoverCredential()
        for repair in repairs { log.warning("credential store repaired", ["what": repair]) }
        credential = recovered
        if credential == nil, let expired = store.newestExpired(trust: trust, now: controllerNow()) {
            // Kept for re-enrollment (or, refused that, for slow broker attempts while an operator acts).
            log.warning("the credential on disk has expired", ["serial": expired.leaf.serialHex, "not_after": expired.leaf.notAfter.formatted(.iso8601)])
            credential = expired
        }
        if credential == nil {
            guard let tokenFile = configuration.tokenFile, let token = try? AtomicFile.readText(tokenFile, limit: 4096).trimmed(), !token.isEmpty else {
                log.error("no usable credential and no enrollment token (set token_file)", ["state_dir": configuration.stateDirectory])
                updateState { $0.state = "expired"; $0.lastError = "no credential and no enrollment token" }
                return .enrollmentRefused
            }
            updateState { $0.state = "enrolling" }
            do {
                guard let enrolled = try await Enrollment(configuration: configuration, store: store, trust: trust, log: log).run(.token(token), stop: stop) else {
                    return .stopped
                }
                adopt(enrolled: enrolled)
            } catch let failure as Enrollment.Failure {
                log.error("enrollment refused", ["code": failure.error.code, "reason": failure.error.message])
                updateState { $0.state = "expired"; $0.lastError = failure.error.description }
                return .enrollmentRefused
            }
        }
        while true {
            if let current = credential, isExpired(current), mayReenroll {
                switch try await reenroll(with: current) {
                case .exit(let exit): return exit
                case .reenroll: break
                }
            }
            switch try await operate() {
            case .exit(let exit): return exit
            case .reenroll: continue
            }
        }
    }

    /// Why the operational session ended.
    enum SessionEnd {
        case exit(Exit)
        /// The certificate expired while offline: re-enroll, then run the session again.
        case reenroll
    }

    /// A credential from an enrollment becomes the one in use.
    private func adopt(enrolled: Credential) {
        credential = enrolled
        enrollmentHookPending = true
        // The controller's per-device seq keeps counting across
        // enrollments, so lastSeq is kept; commands signed before this
        // enrollment are refused by their iat.
        updateState { $0.enrolledAt = enrolled.metadata.issuedAt; $0.lastError = nil }
        recordSkew(receivedAt: enrolled.metadata.receivedAt, issuedAt: enrolled.metadata.issuedAt)
    }

    func isExpired(_ credential: Credential) -> Bool { credential.leaf.notAfter <= controllerNow() }

    /// Re-enrollment is asked for unless configured off or refused a short while ago.
    var mayReenroll: Bool { configuration.reenrollAfterExpiry && (reenrollNotBefore ?? .distantPast) <= Date() }

    /// Offline past notAfter: a new credential over the bootstrap listener,
    /// proven with the expired one's key. Refused, the agent goes on with the
    /// expired credential (slow broker attempts, state `expired`) and asks
    /// again after `reenroll_retry`. `.reenroll` here means: go on.
    private func reenroll(with expired: Credential) async throws -> SessionEnd {
        // Still `expired` until a new credential arrives: that is what the device is.
        updateState { $0.state = "expired"; $0.connected = false; $0.lastError = "certificate expired; re-enrolling over the bootstrap listener" }
        notifier.notify("STATUS=expired, re-enrolling serial=\(expired.leaf.serialHex)")
        let enrollment = Enrollment(configuration: configuration, store: store, trust: trust, log: log)
        do {
            guard let enrolled = try await enrollment.run(.expired(expired, now: { [state] in
                Date().addingTimeInterval(-TimeInterval(state.clockSkewSeconds ?? 0))
            }), stop: stop) else {
                return .exit(.stopped)
            }
            fallback = CredentialFallback()
            adopt(enrolled: enrolled)
            reenrollNotBefore = nil
            retryAttempt = 0
            pending = nil
        } catch let failure as Enrollment.Failure {
            reenrollNotBefore = Date().addingTimeInterval(configuration.reenrollRetry.timeInterval)
            log.error("re-enrollment refused", ["code": failure.error.code, "reason": failure.error.message,
                                                 "retry_in": String(Int(configuration.reenrollRetry.timeInterval))])
            updateState { $0.state = "expired"; $0.lastError = "re-enrollment refused: \(failure.error.description)" }
            if failure.error.code == WireError.Code.revoked.rawValue {
                store.eraseAll()
                credential = nil
                updateState { $0.state = "revoked"; $0.serial = nil; $0.notAfter = nil; $0.nextRenewal = nil; $0.revokedAt = Int64(Date().timeIntervalSince1970) }
                notifier.notify("STATUS=revoked")
                _ = await stop.wait()
                return .exit(.stopped)
            }
        }
        return .reenroll
    }

    // MARK: operational session

    private func operate() async throws -> SessionEnd {
        guard let credential else { return .exit(.failure) }
        let device = configuration.deviceID
        var mqttConfig = MQTTConfiguration(host: configuration.brokerHost, port: configuration.operationalPort,
                                           clientID: device.rawValue, caFile: brokerCAFile)
        // Through the `current` symlink: libmosquitto re-reads these on every
        // connect, so a swapped generation is picked up by a reconnect.
        mqttConfig.certFile = store.certificatePath
        mqttConfig.keyFile = store.keyPath
        mqttConfig.keepAlive = configuration.keepAlive
        mqttConfig.will = MQTTMessage(topic: Topics.state(device), payload: WireCodec.encode(DeviceStateReport(state: "offline", agentVersion: agentVersion)),
                                      qos: 1, retain: true)
        let client = try MQTTClient(mqttConfig, log: { [log] in log.debug($0) })
        self.client = client
        client.addSubscription(Topics.renewResponse(device), qos: 1)
        client.addSubscription(Topics.command(device), qos: 1)

        let (events, continuation) = AsyncStream.makeStream(of: AgentEvent.self)
        self.continuation = continuation
        let forward = Task { for await e in client.events { continuation.yield(.mqtt(e)) } }
        let stopWatch = Task { [stop] in continuation.yield(.stop(await stop.wait())) }
        defer {
            forward.cancel()
            stopWatch.cancel()
            timer?.cancel()
            idleTrim?.cancel()
            continuation.finish()
        }
        let expired = isExpired(credential)
        updateState {
            $0.state = expired ? "expired" : "active"
            $0.serial = credential.leaf.serialHex
            $0.notAfter = Int64(credential.leaf.notAfter.timeIntervalSince1970)
        }
        if expired {
            // The broker will refuse it: a few attempts a minute, not a tight loop.
            client.setReconnectFloor(AgentRunner.expiredReconnectFloor)
        } else {
            scheduleRenewal()
        }
        watchUnconfirmedSwap(current: credential)
        let watchdog = Watchdog.start { continuation.yield(.watchdog) }
        defer { watchdog?.cancel() }
        client.start()
        notifier.notify("READY=1\nSTATUS=active serial=\(credential.leaf.serialHex)")
        if enrollmentHookPending {
            enrollmentHookPending = false
            runHook(.renew, for: credential)
        }

        for await event in events {
            switch event {
            case .stop(let signal):
                log.notice("stopping", ["signal": signal])
                publishState("offline")
                client.stop()
                return .exit(.stopped)
            case .renewDue(let generation):
                guard generation == timerGeneration else { continue }
                startRenewal(reason: "scheduled", campaign: nil)
            case .mqtt(let mqttEvent):
                if let end = handle(mqttEvent) {
                    if case .reenroll = end {
                        client.stop()
                        self.client = nil
                        timer?.cancel()
                    }
                    return end
                }
            case .hookFinished(let outcome):
                hookFinished(outcome)
            case .watchdog:
                notifier.notify("WATCHDOG=1")
            }
        }
        return .exit(.stopped)
    }

    private func handle(_ event: MQTTEvent) -> SessionEnd? {
        switch event {
        case .connected:
            log.info("connected to the broker", ["serial": credential?.leaf.serialHex ?? "-"])
            updateState { $0.connected = true }
            client?.setReconnectFloor(0)
            if let generation = credential?.generation { perform(fallback.connected(generation: generation)) }
            publishState(state.state)
            // A renewal that came due while offline goes now.
            if let deadline = renewalDeadline, deadline <= Date(), pending == nil { startRenewal(reason: "scheduled", campaign: nil) }
            releaseIdleMemorySoon()
        case .connectionFailed(let why), .disconnected(let why):
            let deliberate = why == MQTTEvent.reconnectRequested
            log.log(deliberate ? .info : .warning, "broker connection lost", ["reason": why])
            updateState { $0.connected = false }
            perform(fallback.connectionFailed(deliberate: deliberate, now: Date()))
            if let credential, isExpired(credential) {
                if state.state != "expired" { log.error("certificate expired while offline", ["not_after": credential.leaf.notAfter.formatted(.iso8601)]) }
                if mayReenroll {
                    updateState { $0.state = "expired"; $0.lastError = "certificate expired while offline; re-enrolling" }
                    return .reenroll
                }
                // The broker will refuse every handshake until the device is
                // re-enrolled: a few attempts a minute, not a tight loop.
                client?.setReconnectFloor(AgentRunner.expiredReconnectFloor)
                if state.state != "expired" { log.error("retrying the broker slowly until an operator acts or re-enrollment is allowed") }
                updateState { $0.state = "expired"; if $0.lastError?.hasPrefix("re-enrollment refused") != true { $0.lastError = "certificate expired while offline" } }
            }
        case .subscriptionRefused(let why):
            log.error("subscription refused by the broker", ["reason": why])
        case .message(let message):
            if message.topic == Topics.renewResponse(configuration.deviceID) {
                handleRenewReply(message.payload)
            } else if message.topic == Topics.command(configuration.deviceID) {
                return handleCommand(message.payload).map { .exit($0) }
            }
        }
        return nil
    }

    /// A few seconds after a connection (start-up, or the reconnect that
    /// follows each renewal), once the handshake, subscriptions and state
    /// report are done: unmap the code and tables only that burst touched.
    func releaseIdleMemorySoon() {
        idleTrim?.cancel()
        idleTrim = Task { [log] in
            do { try await Task.sleep(for: AgentRunner.idleTrimDelay) } catch { return }
            log.debug("releasing start-up pages once the event loop is idle")
            AgentExecutors.loop.whenIdle { IdleMemory.release() }
        }
    }
    static let idleTrimDelay: Duration = .seconds(3)

    // MARK: renewal

    func scheduleRenewal(after delay: Double? = nil) {
        guard let credential else { return }
        let deadline: Date
        if let delay {
            deadline = Date().addingTimeInterval(delay)
        } else {
            // The lifetime runs on the controller's clock; placed on this
            // device's clock by the skew measured when the reply came.
            let lifetime = localLifetime(of: credential)
            deadline = RenewalSchedule.deadline(issuedAt: lifetime.start, notAfter: lifetime.end,
                                                fraction: credential.metadata.renewAt ?? configuration.renewAt,
                                                jitter: configuration.renewJitter, using: &rng)
            renewalDeadline = deadline
        }
        updateState { $0.nextRenewal = Int64(deadline.timeIntervalSince1970) }
        timerGeneration += 1
        let generation = timerGeneration
        timer?.cancel()
        let continuation = self.continuation
        timer = Task { [log] in
            guard await AgentRunner.sleep(until: deadline, log: log) else { return }
            continuation?.yield(.renewDue(generation))
        }
    }

    func startRenewal(reason: String, campaign: String?) {
        guard let credential, let client else { return }
        guard client.isConnected else {
            log.info("renewal due while offline; will renew on reconnect")
            return
        }
        if pending == nil {
            do {
                // A new key for every certificate: a stolen old key dies with its certificate.
                let key = try PrivateKey.generateP256()
                CrashPoint.afterKeyGeneration.reach()
                let csr = try CertificateSigningRequest.make(commonName: configuration.deviceID.rawValue, key: key)
                let request = RenewRequest(requestId: makeRequestID(), csr: csr.pem, reason: reason, campaignId: campaign,
                                           currentSerial: credential.leaf.serialHex)
                pending = PendingRenewal(request: request, key: key)
            } catch {
                log.error("cannot make a renewal request", ["error": "\(error)"])
                retryLater()
                return
            }
        }
        // A retry after a timeout sends the same request id and CSR: the
        // controller answers a repeat with the certificate it already issued.
        guard let request = pending?.request else { return }
        do {
            try client.publish(topic: Topics.renewRequest(configuration.deviceID), payload: WireCodec.encode(request), qos: 1)
            CrashPoint.afterRequestPublished.reach()
            log.info("renewal requested", ["reason": request.reason, "request": request.requestId, "attempt": String(retryAttempt + 1)])
            updateState { $0.state = "renewing" }
            // No reply within the timeout (plus backoff after failures): ask again.
            let backoff = retryAttempt == 0 ? 0 : RenewalSchedule.retryDelay(
                attempt: retryAttempt, cap: configuration.maxRetryDelay.timeInterval,
                remaining: credential.leaf.notAfter.timeIntervalSince(controllerNow()), using: &rng)
            retryAttempt += 1
            scheduleRenewal(after: configuration.requestTimeout.timeInterval + backoff)
        } catch {
            log.warning("renewal request not sent", ["error": "\(error)"])
            retryLater()
        }
    }

    func retryLater() {
        guard let credential else { return }
        retryAttempt += 1
        let delay = RenewalSchedule.retryDelay(attempt: retryAttempt, cap: configuration.maxRetryDelay.timeInterval,
                                               remaining: credential.leaf.notAfter.timeIntervalSince(controllerNow()), using: &rng)
        scheduleRenewal(after: delay)
    }

    private func handleRenewReply(_ payload: [UInt8]) {
        guard let reply = try? WireCodec.decode(CertificateReply.self, from: payload) else {
            log.warning("malformed renewal reply ignored")
            return
        }
        guard let pending, reply.requestId == pending.request.requestId else {
            // A duplicate or a reply to an abandoned request: installing it
            // twice or out of order would be worse than ignoring it.
            log.info("stale renewal reply ignored", ["request": String(reply.requestId.prefix(64))])
            return
        }
        switch ReplyValidator.check(reply, pendingKey: pending.key, device: configuration.deviceID, trust: trust, now: Date()) {
        case .issued(let chain):
            CrashPoint.afterReplyReceived.reach()
            do {
                let now = Int64(Date().timeIntervalSince1970)
                let meta = GenerationMetadata(issuedAt: reply.issuedAt ?? now, renewAt: reply.renewAt, receivedAt: now)
                let replaced = credential
                let installed = try store.install(key: pending.key, chain: chain, metadata: meta)
                CrashPoint.afterSwap.reach()
                credential = installed
                fallback.installed(generation: installed.generation, previous: replaced?.generation, previousNotAfter: replaced?.leaf.notAfter)
                self.pending = nil
                retryAttempt = 0
                recordSkew(receivedAt: now, issuedAt: reply.issuedAt)
                updateState {
                    $0.state = "active"
                    $0.serial = installed.leaf.serialHex
                    $0.notAfter = Int64(installed.leaf.notAfter.timeIntervalSince1970)
                    $0.renewals += 1
                    $0.lastError = nil
                }
                log.notice("certificate renewed", ["serial": installed.leaf.serialHex, "not_after": installed.leaf.notAfter.formatted(.iso8601),
                                                   "generation": String(installed.generation)])
                notifier.notify("STATUS=active serial=\(installed.leaf.serialHex)")
                scheduleRenewal()
                // Reconnect so the broker session runs on the new certificate.
                client?.reconnectNow()
                runHook(.renew, for: installed)
            } catch {
                log.error("cannot install the new certificate; keeping the current one", ["error": "\(error)"])
                retryLater()
            }
        case .refused(let error, let retryAfter):
            log.warning("renewal refused", ["code": error.code, "reason": error.message])
            updateState { $0.lastError = error.description }
            // The next attempt makes a new key and request.
            self.pending = nil
            if error.code == WireError.Code.revoked.rawValue {
                revokeLocally(reason: "controller refused renewal: revoked")
                return
            }
            if let retryAfter { scheduleRenewal(after: Double(retryAfter)) } else { retryLater() }
        case .invalid(let why):
            log.error("renewal reply rejected; nothing installed", ["reason": why])
            updateState { $0.lastError = "renewal reply rejected: \(why)" }
            self.pending = nil
            retryLater()
        }
    }

    // MARK: commands

    private func handleCommand(_ payload: [UInt8]) -> Exit? {
        guard let credential else { return nil }
        let text = String(decoding: payload.prefix(32768), as: UTF8.self)
        let domain = credential.leaf.uriSANs.lazy.compactMap(AgentRunner.trustDomain(ofDeviceURI:)).first ?? ""
        let verifier = CommandVerifier(trustAnchors: trust, trustDomain: domain, device: configuration.deviceID)
        switch verifier.verify(text, now: Date(), lastSeq: state.lastSeq) {
        case .failure(let refusal):
            log.warning("command refused", ["code": refusal.code, "reason": refusal.message])
            ack(CommandAck(jti: refusal.jti, outcome: "refused", code: refusal.code, message: refusal.message))
            return nil
        case .success(let claims) where claims.iat < (state.enrolledAt ?? .min):
            log.warning("command refused", ["code": "stale", "reason": "issued before this device enrolled"])
            ack(CommandAck(jti: claims.jti, outcome: "refused", code: "stale", message: "command issued before enrollment"))
            return nil
        case .success(let claims):
            // Persist the sequence first: a crash must not let the same command run twice.
            updateState { $0.lastSeq = claims.seq }
            log.notice("command accepted", ["cmd": claims.cmd, "seq": String(claims.seq), "jti": claims.jti])
            switch claims.cmd {
            case "ping":
                ack(CommandAck(jti: claims.jti, outcome: "done"))
            case "rotate":
                ack(CommandAck(jti: claims.jti, outcome: "done"))
                let campaign = claims.args?["campaign"]
                startRenewal(reason: campaign == nil ? "forced" : "campaign", campaign: campaign)
            case "revoke":
                ack(CommandAck(jti: claims.jti, outcome: "done"))
                revokeLocally(reason: claims.args?["reason"] ?? "revoked by the controller")
            case "retire":
                return retire(jti: claims.jti)
            case "bundle":
                installBundle(jti: claims.jti, args: claims.args)
            default:
                ack(CommandAck(jti: claims.jti, outcome: "refused", code: "not_supported", message: "\(claims.cmd) is not supported by this agent"))
            }
            return nil
        }
    }

    /// spiffe://DOMAIN/device/ID → DOMAIN
    static func trustDomain(ofDeviceURI uri: String) -> String? {
        guard uri.hasPrefix("spiffe://") else { return nil }
        let rest = uri.dropFirst("spiffe://".count)
        guard let slash = rest.firstIndex(of: "/"), rest[slash...].hasPrefix("/device/") else { return nil }
        return String(rest[..<slash])
    }

    /// The modification time of `token_file` when it is newer than the
    /// revocation (a state file from before `revokedAt` existed: never).
    func tokenWrittenAfterRevocation() -> Int64? {
        guard let file = configuration.tokenFile, let revokedAt = state.revokedAt else { return nil }
        var info = stat()
        guard stat(file, &info) == 0 else { return nil }
        let written = Int64(info.st_mtim.tv_sec)
        return written >= revokedAt ? written : nil
    }

    /// Stops using the credential at once: erase keys, report, disconnect, and
    /// stay alive in `revoked`.
    private func revokeLocally(reason: String) {
        log.warning("credential revoked; erasing keys", ["reason": reason])
        let revoked = credential
        // Nothing to fall back to once the keys are gone.
        fallback = CredentialFallback()
        timer?.cancel()
        pending = nil
        publishState("revoked")
        // Give the ack and state a moment to leave before the connection closes.
        usleepSeconds(0.5)
        client?.stop()
        store.eraseAll()
        credential = nil
        updateState {
            $0.state = "revoked"
            $0.serial = nil
            $0.notAfter = nil
            $0.nextRenewal = nil
            $0.connected = false
            $0.lastError = "revoked: \(reason)"
            $0.revokedAt = Int64(Date().timeIntervalSince1970)
        }
        notifier.notify("STATUS=revoked")
        if let revoked { runHook(.revoke, for: revoked) }
    }

    func ack(_ ack: CommandAck) {
        do { try client?.publish(topic: Topics.ack(configuration.deviceID), payload: WireCodec.encode(ack), qos: 1) } catch {
            log.warning("ack not sent", ["error": "\(error)"])
        }
    }

    func publishState(_ name: String) {
        guard let client, client.isConnected else { return }
        let report = DeviceStateReport(state: name, serial: credential?.leaf.serialHex,
                                       notAfter: credential.map { Int64($0.leaf.notAfter.timeIntervalSince1970) },
                                       nextRenewal: state.nextRenewal, agentVersion: agentVersion, time: Int64(Date().timeIntervalSince1970))
        try? client.publish(topic: Topics.state(configuration.deviceID), payload: WireCodec.encode(report), qos: 1, retain: true)
    }

    func updateState(_ change: (inout AgentState) -> Void) {
        var next = state
        change(&next)
        next.updatedAt = Int64(Date().timeIntervalSince1970)
        state = next
        do { try next.save(to: configuration.stateDirectory) } catch { log.error("cannot save agent state", ["error": "\(error)"]) }
    }
}

func usleepSeconds(_ seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    nanosleep(&ts, nil)
}
