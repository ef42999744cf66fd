import Foundation
import Shared

/// Sends commands through the controller's MQTT connection (QoS 1).
struct MQTTCommandTransport: CommandTransport {
    let client: MQTTClient
    func publish(topic: String, payload: [UInt8]) throws {
        try client.publish(topic: topic, payload: payload, qos: 1, retain: false)
    }
}

/// `lanyard-controller run`: the broker connection answering devices, the
/// admin API, and the CRL kept fresh, until SIGTERM or SIGINT.
package final class ControllerService: Sendable {
    package let configuration: ControllerConfiguration
    let log = Logger(component: "controller")
    let store: Store
    let register: DeviceRegister
    let issuance: IssuanceService
    let crl: CRLPublisher
    let commands: CommandSender
    let revocation: RevocationService
    let sessionCutter: DynamicSecuritySessionCutter
    let mqtt: MQTTClient
    let clock: @Sendable () -> Date

    package init(configuration: ControllerConfiguration, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.configuration = configuration
        self.clock = clock
        let layout = PKILayout(directory: configuration.pkiDirectory)
        let authority = try IssuingAuthority.load(layout)
        store = try Store(path: configuration.databasePath)
        register = DeviceRegister(store: store, classes: configuration.classes, clock: clock)
        issuance = IssuanceService(store: store, register: register, authority: authority, trustDomain: configuration.trustDomain,
                                   backdate: configuration.backdate, clock: clock)
        crl = CRLPublisher(store: store, authority: authority, configuration: configuration, clock: clock, log: log)

        var mqttConfig = MQTTConfiguration(host: configuration.brokerHost, port: configuration.brokerPort,
                                           clientID: ServiceIdentity.controller, caFile: layout.bundle)
        mqttConfig.certFile = layout.controllerCertificate
        mqttConfig.keyFile = layout.controllerKey
        let mqttLog = log
        mqtt = try MQTTClient(mqttConfig, log: { mqttLog.info($0) })

        let signerKey = try PrivateKey(pem: AtomicFile.readText(layout.commandSignerKey))
        let signerChain = try Certificate.chain(fromPEM: AtomicFile.readText(layout.commandSignerCertificate))
        guard signerChain.first?.publicKey == signerKey.publicKey else {
            throw WireError(.internal, "\(layout.commandSignerKey) does not match \(layout.commandSignerCertificate)")
        }
        commands = CommandSender(store: store, signer: CommandSigner(key: signerKey, chain: signerChain),
                                 transport: MQTTCommandTransport(client: mqtt), trustDomain: configuration.trustDomain,
                                 ttl: configuration.commandTTL, clock: clock, log: log)
        sessionCutter = DynamicSecuritySessionCutter { [mqtt] topic, payload in
            try mqtt.publish(topic: topic, payload: payload, qos: 1, retain: false)
        }
        revocation = RevocationService(store: store, crl: crl, commands: commands, sessions: sessionCutter, clock: clock)
    }

    /// Writes the first CRL (used by `init`, before the broker ever starts).
    package static func publishInitialCRL(configuration: ControllerConfiguration) throws -> CRLPublisher.Published {
        let store = try Store(path: configuration.databasePath)
        let authority = try IssuingAuthority.load(PKILayout(directory: configuration.pkiDirectory))
        // `init` reports what it made on stdout; only trouble goes to the log.
        return try CRLPublisher(store: store, authority: authority, configuration: configuration, clock: { Date() },
                                log: Logger(component: "controller", minimum: .warning)).publish()
    }

    package func run() async throws {
        // The broker refuses every device when the CRL is missing or stale:
        // make sure a fresh one is on disk before anything else.
        try crl.refreshIfDue()

        let admin = AdminServer(path: configuration.adminSocket, allowedUIDs: configuration.adminUIDs, log: log,
                                onRefused: { [store, clock] actor in
                                    try? store.withConnection { db in
                                        try db.audit(time: clock(), actor: actor, action: "admin.call", target: "-", outcome: "unauthorized")
                                    }
                                },
                                handler: { [self] request, actor in handleAdmin(request, actor: actor) })
        try admin.start()
        defer { admin.stop() }

        for filter in [Topics.allEnrollRequests, Topics.allRenewRequests, Topics.allAcks, Topics.allStates,
                       DynamicSecuritySessionCutter.responseTopic] {
            mqtt.addSubscription(filter, qos: 1)
        }
        mqtt.start()
        log.notice("controller running", ["trust_domain": configuration.trustDomain, "broker": "\(configuration.brokerHost):\(configuration.brokerPort)"])

        let stop = ShutdownSignal()
        let events = mqtt.events
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await event in events { handle(event) }
            }
            group.addTask { [self] in
                // Check the CRL often enough that `refresh_before` always leaves room.
                let interval = min(max(configuration.crlRefreshBefore.timeInterval / 4, 5), 3600)
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(interval))
                    do { try crl.refreshIfDue() } catch { log.error("CRL refresh failed", ["error": "\(error)"]) }
                }
            }
            group.addTask {
                let signal = await stop.wait()
                self.log.notice("stopping", ["signal": signal])
            }
            // The first task to finish is the signal (or a failure): stop everything.
            _ = try await group.next()
            mqtt.stop()
            group.cancelAll()
        }
    }

    // MARK: broker messages

    func handle(_ event: MQTTEvent) {
        switch event {
        case .connected: log.notice("connected to the broker")
        case .connectionFailed(let why): log.warning("broker connection failed", ["reason": why])
        case .disconnected(let why): log.warning("broker connection lost", ["reason": why])
        case .subscriptionRefused(let why): log.error("subscription refused", ["reason": why])
        case .message(let message): handle(message)
        }
    }

    func handle(_ message: MQTTMessage) {
        if message.topic == DynamicSecuritySessionCutter.responseTopic {
            sessionCutter.handleResponse(message.payload)
            return
        }
        guard let inbound = Topics.classify(message.topic) else {
            log.warning("message on an unexpected topic ignored", ["topic": message.topic])
            return
        }
        do {
            switch inbound {
            case .enrollRequest(let device):
                let reply = answer(message.payload, as: EnrollRequest.self) { issuance.enroll($0, topicDevice: device) }
                logReply("enroll", device, reply)
                try mqtt.publish(topic: Topics.enrollResponse(device), payload: WireCodec.encode(reply), qos: 1)
            case .renewRequest(let device):
                let reply = answer(message.payload, as: RenewRequest.self) { issuance.renew($0, device: device) }
                logReply("renew", device, reply)
                try mqtt.publish(topic: Topics.renewResponse(device), payload: WireCodec.encode(reply), qos: 1)
            case .ack(let device):
                commands.recordAck(try WireCodec.decode(CommandAck.self, from: message.payload), from: device)
            case .state(let device):
                guard !message.payload.isEmpty else { return }  // a cleared retained message
                let report = try WireCodec.decode(DeviceStateReport.self, from: message.payload)
                try register.recordState(device, reported: report.state)
            }
        } catch let error as WireError {
            // Malformed input: log and carry on. A reply needs a request id we could not read.
            log.warning("malformed message ignored", ["topic": message.topic, "error": error.description])
        } catch {
            log.error("message handling failed", ["topic": message.topic, "error": "\(error)"])
        }
    }

    /// Decodes a request and answers it; a request that does not decode, or
    /// speaks another protocol version, gets a coded `bad_request` reply when
    /// its request id can be read (and is dropped with a log line otherwise).
    private func answer<R: Decodable>(_ payload: [UInt8], as type: R.Type, _ handle: (R) -> CertificateReply) -> CertificateReply {
        let envelope = try? WireCodec.decode(RequestEnvelope.self, from: payload)
        let requestID = envelope?.requestId.flatMap { IssuanceService.isValidRequestID($0) ? $0 : nil } ?? ""
        if let v = envelope?.v, v != protocolVersion {
            return .failure(requestID, WireError(.badRequest, "protocol version \(v) is not supported (this controller speaks \(protocolVersion))"))
        }
        do {
            return handle(try WireCodec.decode(R.self, from: payload))
        } catch {
            return .failure(requestID, error)
        }
    }

    private func logReply(_ what: String, _ device: DeviceID, _ reply: CertificateReply) {
        if let error = reply.error {
            log.warning("\(what) refused", ["device": device.rawValue, "code": error.code, "reason": error.message])
        } else {
            log.info("\(what): certificate issued", ["device": device.rawValue, "serial": reply.serial ?? "",
                                                      "not_after": String(reply.notAfter ?? 0)])
        }
    }

    // MARK: admin API

    func handleAdmin(_ request: AdminRequest, actor: String) -> AdminResponse {
        func params<P: Decodable>(_ type: P.Type) throws -> P { try WireCodec.decode(P.self, from: Array(request.params), limit: UnixSocket.maxRequestBytes) }
        do {
            switch request.op {
            case .deviceAdd:
                return AdminResponse(result: try register.add(params(DeviceAddParams.self), actor: actor))
            case .deviceApprove:
                return AdminResponse(result: try register.approve(params(DeviceApproveParams.self), defaultTTL: configuration.tokenTTL, actor: actor))
            case .deviceList:
                return AdminResponse(result: DeviceListResult(devices: try register.list()))
            case .deviceShow:
                return AdminResponse(result: try register.show(params(DeviceRef.self).id))
            case .deviceRevoke:
                return AdminResponse(result: try revocation.revoke(params(RevokeParams.self), actor: actor))
            case .status:
                let status = try store.withConnection { db -> ControllerStatus in
                    let devices = try db.query("SELECT count(*) FROM devices").first?.first?.int ?? 0
                    let issued = try db.query("SELECT count(*) FROM certificates").first?.first?.int ?? 0
                    let number = UInt64(try db.meta("crl_number") ?? "0") ?? 0
                    let next = Int64(try db.meta("crl_next_update") ?? "0") ?? 0
                    return ControllerStatus(trustDomain: configuration.trustDomain, brokerConnected: mqtt.isConnected,
                                            devices: Int(devices), crlNumber: number, crlNextUpdate: next, issued: Int(issued))
                }
                return AdminResponse(result: status)
            case .auditVerify:
                // Verify first, then record that someone looked.
                let verification = try store.withConnection { db -> AuditVerification in
                    let v = try AuditChain.verify(db)
                    try db.audit(time: clock(), actor: actor, action: "audit.verify", target: "-", outcome: v.ok ? "ok" : "broken",
                                 detail: v.problem ?? "entries=\(v.entries)")
                    return v
                }
                return AdminResponse(result: verification)
            case .auditExport:
                let entries = try store.withConnection { db -> [AuditEntry] in
                    let all = try AuditChain.entries(db)
                    try db.audit(time: clock(), actor: actor, action: "audit.export", target: "-", outcome: "ok", detail: "entries=\(all.count)")
                    return all
                }
                return AdminResponse(result: AuditExport(entries: entries))
            }
        } catch let error as WireError {
            auditRefusal(request, actor: actor, error: error)
            return AdminResponse(error: error)
        } catch {
            log.error("admin call failed", ["op": request.op.rawValue, "error": "\(error)"])
            return AdminResponse(error: WireError(.internal, "\(error)"))
        }
    }

    private func auditRefusal(_ request: AdminRequest, actor: String, error: WireError) {
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: actor, action: request.op.rawValue, target: "-", outcome: error.code, detail: error.message)
        }
    }
}
