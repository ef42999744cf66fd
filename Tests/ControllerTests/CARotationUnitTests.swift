import Controller
import Foundation
import Shared
import Testing
import TestSupport

private let identity = AdminActor(name: "pki-team", roles: [.identity], auditName: "operator:pki-team")

/// The CA rotation's refusals and its first step, without a broker: the
/// end-to-end run with agents is IntegrationTests.CARotationTests.
@Suite("CA rotation: preparation, CRLs per issuing CA, refusals")
struct CARotationUnitTests {
    func rotation(_ f: ControllerFixture) -> CARotation {
        let log = Logger(component: "ca-rotation-test", minimum: .error)
        let campaigns = CampaignService(store: f.store, commands: f.commands, clock: f.clock.function, log: log)
        return CARotation(layout: f.layout, store: f.store, register: f.register, authorities: f.authorities, crl: f.crl, commands: f.commands,
                          campaigns: campaigns, trustDomain: testTrustDomain, clock: f.clock.function, log: log)
    }

    func openssl(_ args: [String]) throws -> TestProcess.Result { try TestProcess.run("/usr/bin/openssl", args) }

    @Test("start: CA 2 under the same root; the broker's bundle and a CRL per CA in the hashed directory, each signed by its CA; devices get the bundle")
    func start() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        try f.crl.publish()
        let status = try rotation(f).rotate(CARotateParams(reason: "yearly"), actor: identity.auditName)
        #expect(status.rotation?.phase == "trusting")
        #expect(status.generations.map(\.state) == ["active", "prepared"])
        #expect(f.authorities.active.generation == 1, "the new CA must not issue before devices trust it")

        let ca2 = "\(f.layout.directory)/issuing-ca-2.pem"
        #expect(try openssl(["verify", "-CAfile", f.layout.rootCertificate, ca2]).succeeded)
        #expect(try String(contentsOfFile: f.layout.bundle, encoding: .utf8).components(separatedBy: "BEGIN CERTIFICATE").count - 1 == 3)
        let mode = try FileManager.default.attributesOfItem(atPath: "\(f.layout.directory)/issuing-ca-2.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // One CRL per live CA, named as OpenSSL's hashed lookup (Mosquitto's capath) expects, each verified by its own CA.
        for caFile in [f.layout.issuingCertificate, ca2] {
            let hash = try openssl(["x509", "-in", caFile, "-noout", "-subject_hash"]).stdout.trimmed()
            let crlFile = "\(f.configuration.crlDirectory)/\(hash).r0"
            let checked = try openssl(["crl", "-in", crlFile, "-CAfile", caFile, "-noout"])
            #expect(checked.succeeded && checked.stderr.contains("verify OK"), "\(crlFile): \(checked.stderr)")
        }
        // The bundle command went to the enrolled device, with both issuing CAs and replace=false.
        let topic = Topics.command(try #require(DeviceID("gw-1")))
        #expect(!f.transport.published.contains { $0.topic == topic }, "commands go out at the tick, not in the operator's call")
        rotation(f).tick()
        let command = try #require(f.transport.published.last { $0.topic == topic })
        let parts = String(decoding: command.payload, as: UTF8.self).split(separator: ".")
        try #require(parts.count == 3, "a compact JWS")
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let payload = try #require(Data(base64Encoded: base64))
        let claims = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
        let args = claims["args"] as? [String: String] ?? [:]
        #expect(claims["cmd"] as? String == "bundle" && args["replace"] == "false", "\(claims)")
        #expect(args["bundle"] == (try String(contentsOfFile: f.layout.bundle, encoding: .utf8)), "the bundle sent is root + CA 1 + CA 2")

        // The evidence report tells auditors which CA issues and where the rotation stands.
        let auditor = AdminActor(name: "auditor-1", roles: [.auditor], auditName: "operator:auditor-1")
        let report = try f.call(.report, Empty(), as: EvidenceReport.self, actor: auditor)
        let note = report.controls.first { $0.control == "rotation_on_lifecycle_events" }?.note ?? ""
        #expect(note.contains("issuing CA 1") && note.contains("last CA rotation rot-") && note.contains("trusting"), "\(note)")
    }

    @Test("refusals: a second rotation while one runs, retire with none to retire, bad parameters, the root key offline")
    func refusals() throws {
        let f = try ControllerFixture()
        let r = rotation(f)
        #expect(throws: WireError.self) { try r.rotate(CARotateParams(reason: " "), actor: "t") }
        #expect(throws: WireError.self) { try r.rotate(CARotateParams(reason: "x", bundleTimeout: 1), actor: "t") }
        #expect(try WireErrorCode { try r.retire(CARetireParams(reason: "nothing to retire"), actor: "t") } == "not_found")

        // The root key offline and no CA placed: a coded refusal that says what to do; nothing is left half-made.
        let offline = f.layout.rootKey + ".offline"
        try FileManager.default.moveItem(atPath: f.layout.rootKey, toPath: offline)
        let refusal = try #require(try? WireErrorValue { try r.rotate(CARotateParams(reason: "x"), actor: "t") })
        #expect(refusal.code == "root_key_offline" && refusal.message.contains("issuing-ca-2.pem"), "\(refusal)")
        #expect(try r.status().generations.count == 1 && r.status().rotation == nil)

        // The operator signs CA 2 offline and places it: the rotation uses it.
        let rootKey = try PrivateKey(pem: String(contentsOfFile: offline, encoding: .utf8))
        let root = try Certificate(pem: String(contentsOfFile: f.layout.rootCertificate, encoding: .utf8))
        let key = try PrivateKey.generateP256()
        let cert = try CertificateIssuer.sign(PKIInitializer.authorityTemplate("Offline-signed CA 2", trustDomain: testTrustDomain, years: 2,
                                                                               pathLength: 0, now: f.clock.now),
                                              subjectKey: key.publicKey, issuer: root, issuerKey: rootKey)
        try key.pkcs8PEM().write(toFile: f.layout.issuingKey(generation: 2), atomically: true, encoding: .utf8)
        try cert.pem.write(toFile: f.layout.issuingCertificate(generation: 2), atomically: true, encoding: .utf8)
        let started = try r.rotate(CARotateParams(reason: "offline root"), actor: "t")
        #expect(started.generations.last?.commonName.hasPrefix("Offline-signed CA 2") == true)
        #expect(try WireErrorCode { try r.rotate(CARotateParams(reason: "again"), actor: "t") } == "invalid_transition")
    }

    @Test("a placed CA not issued by the root is refused")
    func foreignPlacedCA() throws {
        let f = try ControllerFixture()
        let key = try PrivateKey.generateP256()
        let foreign = try CertificateIssuer.sign(PKIInitializer.authorityTemplate("Foreign", trustDomain: testTrustDomain, years: 2, pathLength: 0,
                                                                                  now: f.clock.now),
                                                 subjectKey: key.publicKey, issuer: nil, issuerKey: key)
        try key.pkcs8PEM().write(toFile: f.layout.issuingKey(generation: 2), atomically: true, encoding: .utf8)
        try foreign.pem.write(toFile: f.layout.issuingCertificate(generation: 2), atomically: true, encoding: .utf8)
        #expect(try WireErrorCode { try rotation(f).rotate(CARotateParams(reason: "x"), actor: "t") } == "bad_request")
    }
}

extension CARotationUnitTests {
    @Test("an operator certificate from a retired issuing CA no longer authenticates, though its chain still reaches the root")
    func operatorCertificateFromRetiredCA() throws {
        let f = try ControllerFixture()
        let operators = OperatorRegister(store: f.store, clock: f.clock.function)
        _ = try operators.add(OperatorAddParams(name: "alice", roles: ["ops"]), createdBy: "test")
        let key = try PrivateKey.generateP256()
        let csr = try CertificateSigningRequest.make(commonName: "alice", key: key)
        let certificates = OperatorCertificates(store: f.store, trustDomain: testTrustDomain, clock: f.clock.function)
        let chain = try Certificate.chain(fromPEM: certificates.issue(csrPEM: csr.pem, name: "alice", days: 30, authority: f.authority, actor: "test"))
        #expect(try certificates.authenticate(der: chain[0].der, operators: operators)?.name == "alice")
        _ = try f.sqlite("UPDATE ca_generations SET state = 'retired' WHERE generation = 1")
        #expect(try certificates.authenticate(der: chain[0].der, operators: operators) == nil)
    }
}

private func WireErrorValue(_ body: () throws -> Any) throws -> WireError {
    do { _ = try body() } catch let error as WireError { return error }
    throw WireError(.internal, "expected a coded refusal")
}

private func WireErrorCode(_ body: () throws -> Any) throws -> String {
    try WireErrorValue(body).code
}
