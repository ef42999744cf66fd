import Foundation
import Testing

@testable import Controller
import Shared
import TestSupport

/// 2025-06-15T16:26:40Z: every controller test starts its clock here.
let referenceTime = Date(timeIntervalSince1970: 1_750_004_800)
let testTrustDomain = "test.lanyard"

/// A clock the tests move by hand instead of sleeping.
final class TestClock: @unchecked Sendable {
    // `current` is only touched while `lock` is held.
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date) { current = start }

    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
    var function: @Sendable () -> Date { { [self] in now } }
}

/// Records every command the controller would have published.
final class RecordingTransport: CommandTransport, @unchecked Sendable {
    // `messages` is only touched while `lock` is held.
    private let lock = NSLock()
    private var messages: [(topic: String, payload: [UInt8])] = []

    func publish(topic: String, payload: [UInt8]) throws {
        lock.withLock { messages.append((topic, payload)) }
    }

    var published: [(topic: String, payload: [UInt8])] { lock.withLock { messages } }
}

/// Owners for every role: what the `sensor` class requires.
let allOwners = ["identity": "pki-team", "secarch": "sec-arch", "ops": "ot-ops", "procurement": "buyers", "business": "plant-manager"]

/// A controller assembled from its services over a throwaway PKI made by the
/// product's own `PKIInitializer`, a SQLite file and a configuration file on disk.
final class ControllerFixture: @unchecked Sendable {
    let directory: String
    let clock: TestClock
    let layout: PKILayout
    let configuration: ControllerConfiguration
    let authority: IssuingAuthority
    /// The issuing CAs as the controller holds them (generation 1 here; a CA rotation test adds more).
    let authorities: AuthorityRing
    let store: Store
    let register: DeviceRegister
    let issuance: IssuanceService
    let crl: CRLPublisher
    let transport = RecordingTransport()
    let commands: CommandSender
    let revocation: RevocationService
    /// The admin calls as both transports make them, role checks included.
    let admin: AdminDispatcher
    var exceptions: ExceptionRegister { admin.exceptions }
    var databasePath: String { configuration.databasePath }
    var reloadFlag: String { directory + "/reloaded.flag" }

    static func configText(directory: String) -> String {
        """
        # controller configuration for unit tests
        [controller]
        trust_domain = \(testTrustDomain)
        pki_dir = pki
        database = lanyard.db
        token_ttl = 1h
        backdate = 5m
        command_ttl = 1h

        [broker]
        crl_file = crl.pem
        reload_command = touch '\(directory)/reloaded.flag'

        [crl]
        validity = 7d
        refresh_before = 3d

        [class.sensor]
        ttl = 1d
        max_ttl = 30d
        renew_at = 0.66
        required_owners = identity, secarch, ops, procurement, business
        key_algorithms = P-256
        rotate_keys = true

        [class.fixed]
        ttl = 2h
        required_owners = ops
        rotate_keys = false

        [class.lite]
        ttl = 1h
        required_owners = ops, business

        [class.roamer]
        ttl = 1d
        required_owners = ops
        reenroll_after_expiry = true
        reenroll_window = 2d

        """
    }

    init(start: Date = referenceTime) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-ct-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        clock = TestClock(start)
        let configPath = directory + "/controller.conf"
        try ControllerFixture.configText(directory: directory).write(toFile: configPath, atomically: true, encoding: .utf8)
        configuration = try ControllerConfiguration.load(path: configPath)
        layout = PKILayout(directory: configuration.pkiDirectory)
        try PKIInitializer(layout: layout, trustDomain: testTrustDomain, now: start).run()
        authority = try IssuingAuthority.load(layout)
        store = try Store(path: configuration.databasePath)
        let now = clock.function
        authorities = try AuthorityRing.load(layout: layout, store: store, clock: now)
        register = try DeviceRegister(store: store, classes: configuration.classes, clock: now)
        issuance = IssuanceService(store: store, register: register, authorities: authorities, trustDomain: testTrustDomain,
                                   backdate: configuration.backdate, clock: now)
        let log = Logger(component: "controller-test", minimum: .error)
        crl = CRLPublisher(store: store, authorities: authorities, configuration: configuration, clock: now, log: log)
        let signerKey = try PrivateKey(pem: String(contentsOfFile: layout.commandSignerKey, encoding: .utf8))
        let signerChain = try Certificate.chain(fromPEM: String(contentsOfFile: layout.commandSignerCertificate, encoding: .utf8))
        commands = CommandSender(store: store, signer: CommandSigner(key: signerKey, chain: signerChain), transport: transport,
                                 trustDomain: testTrustDomain, ttl: configuration.commandTTL, clock: now, log: log)
        revocation = RevocationService(store: store, crl: crl, commands: commands, clock: now)
        admin = AdminDispatcher(store: store, register: register, revocation: revocation, configuration: configuration,
                                issuerName: authority.certificate.commonName ?? "", brokerConnected: { false }, clock: now, log: log)
    }

    /// Calls the admin API as `actor`; returns the result or throws its coded error.
    func call<P: Encodable, R: Decodable>(_ op: AdminOperation, _ params: P, as: R.Type, actor: AdminActor) throws -> R {
        let response = admin.handle(op, params: WireCodec.encode(params), actor: actor)
        if let error = response.error { throw error }
        return try WireCodec.decode(R.self, from: Array(try unwrapped(response.result, "result")))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    // MARK: register

    @discardableResult
    func add(_ id: String, class deviceClass: String = "sensor", owners: [String: String] = allOwners) throws -> DeviceView {
        try register.add(DeviceAddParams(id: id, deviceClass: deviceClass, owners: owners), actor: "test")
    }

    func approve(_ id: String, tokenTTL: Int? = nil) throws -> ApprovalResult {
        try register.approve(DeviceApproveParams(id: id, tokenTTL: tokenTTL), defaultTTL: configuration.tokenTTL, actor: "test")
    }

    // MARK: issuance

    func enroll(_ id: String, key: PrivateKey, token: String, requestID: String = makeRequestID(), csrCommonName: String? = nil,
                topic: String? = nil) throws -> CertificateReply {
        let csr = try CertificateSigningRequest.make(commonName: csrCommonName ?? id, key: key)
        return try enroll(id, csrPEM: csr.pem, token: token, requestID: requestID, topic: topic)
    }

    func enroll(_ id: String, csrPEM: String, token: String, requestID: String = makeRequestID(), topic: String? = nil) throws -> CertificateReply {
        let request = EnrollRequest(requestId: requestID, deviceId: try #require(DeviceID(id)), csr: csrPEM, token: token, agentVersion: "test")
        return issuance.enroll(request, topicDevice: try #require(DeviceID(topic ?? id)))
    }

    /// A re-enrollment after expiry: a new key, proven with the key of `previous`.
    func reenroll(_ id: String, newKey: PrivateKey, previousKey: PrivateKey, previousChain: [Certificate], requestID: String = makeRequestID(),
                  signedAt: Date? = nil, csrForProof: String? = nil) throws -> CertificateReply {
        let device = try #require(DeviceID(id))
        let csr = try CertificateSigningRequest.make(commonName: id, key: newKey)
        let proof = try ReenrollmentProof.make(device: device, requestID: requestID, csrPEM: csrForProof ?? csr.pem, expiredChain: previousChain,
                                               key: previousKey, now: signedAt ?? clock.now)
        let request = EnrollRequest(requestId: requestID, deviceId: device, csr: csr.pem, token: nil, reenrollment: proof, agentVersion: "test")
        return issuance.enroll(request, topicDevice: device)
    }

    func renew(_ id: String, key: PrivateKey, requestID: String = makeRequestID(), currentSerial: String = "00") throws -> CertificateReply {
        let csr = try CertificateSigningRequest.make(commonName: id, key: key)
        return issuance.renew(RenewRequest(requestId: requestID, csr: csr.pem, reason: "scheduled", currentSerial: currentSerial),
                              device: try #require(DeviceID(id)))
    }

    /// Adds, approves and enrolls `id`; returns the device key and the reply.
    func enrolled(_ id: String, class deviceClass: String = "sensor", owners: [String: String] = allOwners) throws -> (PrivateKey, CertificateReply) {
        try add(id, class: deviceClass, owners: owners)
        let token = try approve(id).token
        let key = try PrivateKey.generateP256()
        let reply = try enroll(id, key: key, token: token)
        try #require(reply.status == "issued", "enrollment of \(id) failed: \(String(describing: reply.error))")
        return (key, reply)
    }

    // MARK: files and tools

    func path(_ name: String) -> String { directory + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path(name)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// Runs the independent `/usr/bin/openssl`.
    func openssl(_ arguments: [String]) throws -> TestProcess.Result {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "/usr/bin/openssl is required")
        return try TestProcess.run("/usr/bin/openssl", arguments, currentDirectory: directory)
    }

    /// Runs the independent `/usr/bin/sqlite3` on the register.
    func sqlite(_ sql: String) throws -> String {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3"), "/usr/bin/sqlite3 is required")
        let result = try TestProcess.run("/usr/bin/sqlite3", [databasePath, sql])
        try #require(result.succeeded, "sqlite3 failed: \(result.stderr)")
        return result.stdout
    }
}

/// The stable code of the `WireError` `body` throws, or nil when it does not throw.
func wireCode(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as WireError {
        return error.code
    } catch {
        return "not a WireError: \(error)"
    }
}

/// The leaf of an issued reply.
func leaf(of reply: CertificateReply) throws -> Certificate {
    try unwrapped(try Certificate.chain(fromPEM: try unwrapped(reply.chain, "chain")).first, "leaf")
}

/// PEM armour for DER bytes, written here rather than borrowed from the product.
func pemArmor(_ der: [UInt8], label: String) -> String {
    "-----BEGIN \(label)-----\n" + Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        + "\n-----END \(label)-----\n"
}

extension CertificateReply {
    var errorCode: String? { error?.code }
}

struct MissingValue: Error, CustomStringConvertible {
    var what: String
    var description: String { "missing \(what)" }
}

/// Like `#require` for optionals, usable inside `#expect` (macros do not nest).
func unwrapped<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw MissingValue(what: what) }
    return value
}
