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
    let campaigns: CampaignService
    let caRotation: CARotation
    let admin: AdminDispatcher
    let mqtt: MQTTClient
    let clock: @Sendable () -> Date

    package init(configuration: ControllerConfiguration, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.configuration = configuration
        self.clock = clock
        let layout = PKILayout(directory: configuration.pkiDirectory)
        store = try Store(path: configuration.databasePath)
        let authorities = try AuthorityRing.load(layout: layout, store: store, clock: clock)
        register = try DeviceRegister(store: store, classes: configuration.classes, clock: clock)
        issuance = IssuanceService(store: store, register: register, authorities: authorities, trustDomain: configuration.trustDomain,
                                   backdate: configuration.backdate, clock: clock)
        crl = CRLPublisher(store: store, authorities: authorities, configuration: configuration, clock: clock, log: log)

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
        let cutterLog = log
        sessionCutter = DynamicSecuritySessionCutter(log: { cutterLog.error($0) }) { [mqtt] topic, payload in
            try mqtt.publish(topic: topic, payload: payload, qos: 1, retain: false)
        }
        revocation = RevocationService(store: store, crl: crl, commands: commands, sessions: sessionCutter, clock: clock)
        campaigns = CampaignService(store: store, commands: commands, clock: clock, log: log)
        caRotation = CARotation(layout: layout, store: store, register: register, authorities: authorities, crl: crl, commands: commands,
                                campaigns: campaigns, sessions: sessionCutter, trustDomain: configuration.trustDomain, clock: clock, log: log)
        var events = LifecycleEvents(store: store, register: register, campaigns: campaigns, revocation: revocation, commands: commands,
                                     templates: configuration.eventTemplates, clock: clock)
        events.tokenTTL = configuration.tokenTTL
        admin = AdminDispatcher(store: store, register: register, revocation: revocation, configuration: configuration,
                                issuerName: authorities.active.certificate.commonName ?? "", brokerConnected: { [mqtt] in mqtt.isConnected }, campaigns: campaigns,
                                events: events,
                                caRotation: caRotation, clock: clock, log: log)
        for name in register.policies.drift(from: configuration.classes) {
            log.warning("class policy in the configuration differs from the register's current version; the register wins (lanyardctl class set)",
                        ["class": name])
        }
    }

    /// Writes the first CRL (used by `init`, before the broker ever starts).
    package static func publishInitialCRL(configuration: ControllerConfiguration) throws -> CRLPublisher.Published {
        let store = try Store(path: configuration.databasePath)
        let authorities = try AuthorityRing.load(layout: PKILayout(directory: configuration.pkiDirectory), store: store)
        // `init` reports what it made on stdout; only trouble goes to the log.
        return try CRLPublisher(store: store, authorities: authorities, configuration: configuration, clock: { Date() },
                                log: Logger(component: "controller", minimum: .warning)).publish()
    }

    package func run() async throws {
        // The broker refuses every device when the CRL is missing or stale:
        // make sure a fresh one is on disk before anything else.
        try crl.refreshIfDue()

        let localAdmin = AdminServer(path: configuration.adminSocket, allowedUIDs: configuration.adminUIDs, log: log,
                                onRefused: { [store, clock] actor in
                                    try? store.withConnection { db in
                                        try db.audit(time: clock(), actor: actor, action: "admin.call", target: "-", outcome: "unauthorized")
                                    }
                                },
                                handler: { [admin] request, actor in admin.handle(request.op, params: Array(request.params), actor: .local(actor)) })
        try localAdmin.start()
        defer { localAdmin.stop() }
        let https = try startHTTPS()
        defer { https?.stop() }

        for filter in [Topics.allEnrollRequests, Topics.allRenewRequests, Topics.allAcks, Topics.allStates,
                       DynamicSecuritySessionCutter.responseTopic] {
            mqtt.addSubscription(filter, qos: 1)
        }
        mqtt.start()
        log.notice("controller running", ["trust_domain": configuration.trustDomain, "broker": "\(configuration.brokerHost):\(configuration.brokerPort)"])

        let stop = ShutdownSignal()
        let events = mqtt.events
        // Device messages are handled on worker threads, one device's in order (MessageWorkers).
        let workers = MessageWorkers(count: MessageWorkers.defaultCount, name: "mqtt-worker")
        defer { workers.stop() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await event in events { dispatch(event, to: workers) }
            }
            group.addTask { [self] in
                // Check the CRL often enough that `refresh_before` always leaves room.
                let interval = min(max(configuration.crlRefreshBefore.timeInterval / 4, 5), 3600)
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(interval))
                    do { try crl.refreshIfDue() } catch { log.error("CRL refresh failed", ["error": "\(error)"]) }
                }
            }
            group.addTask { [self] in
                // Rotation campaigns advance once a second (rate, timeouts, canaries, completion).
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    campaigns.tick()
                    caRotation.tick()
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

    /// Device messages go to the device's worker; everything else is handled here.
    func dispatch(_ event: MQTTEvent, to workers: MessageWorkers) {
        guard case .message(let message) = event, message.topic != DynamicSecuritySessionCutter.responseTopic,
              let inbound = Topics.classify(message.topic) else {
            handle(event)
            return
        }
        let device: DeviceID
        switch inbound {
        case .enrollRequest(let id), .renewRequest(let id), .ack(let id), .state(let id): device = id
        }
        workers.submit(key: device.rawValue) { [self] in handle(message) }
    }

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
                // Decoded once (IssuanceMessages.swift); the reply's JSON written directly (WireCodec.encodeReply).
                let reply = issuance.enroll(payload: message.payload, topicDevice: device)
                logReply("enroll", device, reply)
                try mqtt.publish(topic: Topics.enrollResponse(device), payload: WireCodec.encodeReply(reply), qos: 1)
            case .renewRequest(let device):
                let (reply, campaign) = issuance.renew(payload: message.payload, device: device)
                if let campaign, reply.status == "issued", let serial = reply.serial { campaigns.noteIssued(device: device, campaign: campaign, serial: serial) }
                logReply("renew", device, reply)
                try mqtt.publish(topic: Topics.renewResponse(device), payload: WireCodec.encodeReply(reply), qos: 1)
            case .ack(let device):
                let ack = try WireCodec.decode(CommandAck.self, from: message.payload)
                commands.recordAck(ack, from: device)
                campaigns.noteAck(device: device, ack)
            case .state(let device):
                guard !message.payload.isEmpty else { return }  // a cleared retained message
                let report = try WireCodec.decode(DeviceStateReport.self, from: message.payload)
                // The state and the campaign's note of it in one (group-committed) transaction.
                try store.transaction { db in
                    try register.recordState(db, device, reported: report.state)
                    try? campaigns.noteState(db, device: device, serial: report.serial)
                }
            }
        } catch let error as WireError {
            // Malformed input: log and carry on. A reply needs a request id we could not read.
            log.warning("malformed message ignored", ["topic": message.topic, "error": error.description])
        } catch {
            log.error("message handling failed", ["topic": message.topic, "error": "\(error)"])
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

    /// The HTTPS admin API when `[admin_api]` is configured.
    private func startHTTPS() throws -> HTTPSServer? {
        guard let api = configuration.adminAPI else { return nil }
        let router = HTTPSAdminAPI(dispatcher: admin, certificates: OperatorCertificates(store: store, trustDomain: configuration.trustDomain, clock: clock),
                                   log: log)
        // Operator client certificates chain to the controller's own CA bundle.
        let bundle = try AtomicFile.readText(PKILayout(directory: configuration.pkiDirectory).bundle)
        let server = HTTPSServer(certificatePEM: try AtomicFile.readText(api.certificateFile), keyPEM: try AtomicFile.readText(api.keyFile),
                                 clientTrustPEM: bundle,
                                 preflight: { router.preflight($0) },
                                 onUnverifiedCertificate: { [log] in log.warning("client certificate did not verify; ignored", ["gnutls_status": String($0)]) },
                                 handler: { router.handle($0) })
        try server.start(address: api.address, port: api.port)
        log.info("HTTPS admin API listening", ["address": "\(api.address):\(api.port)"])
        return server
    }
}
