import Foundation
import Testing

@testable import Controller
import Shared

@Suite("Revocation: register, CRL, broker reload and signed revoke command")
struct RevocationTests {
    @Test("revoking marks the device and all its certificates revoked, and stops renewals")
    func revokeRegister() throws {
        let f = try ControllerFixture()
        let (_, enrolled) = try f.enrolled("gw-1")
        f.clock.advance(600)
        let renewed = try f.renew("gw-1", key: try PrivateKey.generateP256())
        try #require(renewed.status == "issued")
        let (_, bystander) = try f.enrolled("gw-2")
        f.clock.advance(60)
        let revokedAt = Int64(f.clock.now.timeIntervalSince1970)

        let result = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "ops:alice")
        #expect(result.id == "gw-1")
        #expect(Set(result.revokedSerials) == [try unwrapped(enrolled.serial), try unwrapped(renewed.serial)])
        #expect(result.commandSent)

        let view = try f.register.show("gw-1")
        #expect(view.state == "revoked")
        #expect(view.revokedAt == revokedAt)
        #expect(view.revocationReason == "keyCompromise")
        #expect(view.certificates?.count == 2)
        #expect(view.certificates?.allSatisfy { $0.revokedAt == revokedAt } == true)
        #expect(try f.sqlite("SELECT DISTINCT revocation_reason FROM certificates WHERE device_id = 'gw-1'") == "1\n")
        // The other device is untouched.
        #expect(try f.register.show("gw-2").state == "active")
        #expect(try f.sqlite("SELECT revoked_at IS NULL FROM certificates WHERE serial = '\(try unwrapped(bystander.serial))'") == "1\n")

        // Renewal afterwards: revoked.
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256()).errorCode == "revoked")
        // A repeated earlier renewal request does not hand the revoked certificate back either.
        #expect(try f.sqlite("SELECT action || ':' || actor || ':' || outcome FROM audit WHERE action = 'device.revoke'") == "device.revoke:ops:alice:ok\n")
    }

    @Test("the CRL lists the revoked serial with its reason, its number increments, and openssl refuses the revoked leaf")
    func revokeCRL() throws {
        let f = try ControllerFixture()
        let (_, reply) = try f.enrolled("gw-1")
        let (_, other) = try f.enrolled("gw-2")
        let serial = try #require(reply.serial)
        let leafPath = try f.write("gw-1.pem", try leaf(of: reply).pem)
        let otherPath = try f.write("gw-2.pem", try leaf(of: other).pem)
        let at = String(Int64(f.clock.now.timeIntervalSince1970))
        func verify(_ path: String) throws -> Bool {
            try f.openssl(["verify", "-attime", at, "-crl_check", "-CRLfile", f.configuration.crlFile, "-CAfile", f.layout.rootCertificate,
                           "-untrusted", f.layout.issuingCertificate, path]).succeeded
        }

        let initial = try f.crl.publish()
        #expect(try verify(leafPath), "before revocation the leaf verifies with CRL checking")
        #expect(try verify(otherPath))

        let result = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "test")
        #expect(result.crlNumber == initial.number + 1)
        #expect(f.crl.current()?.number == initial.number + 1)
        #expect(f.crl.current()?.revokedSerials == [serial])

        let text = try f.openssl(["crl", "-in", f.configuration.crlFile, "-noout", "-text"])
        try #require(text.succeeded, "\(text.stderr)")
        #expect(text.stdout.uppercased().contains("SERIAL NUMBER: " + (serial.count % 2 == 1 ? "0" + serial : serial).uppercased()))
        #expect(text.stdout.contains("Key Compromise"))
        #expect(text.stdout.contains("X509v3 CRL Number"))
        #expect(text.stdout.contains("Issuer: CN = Lanyard Issuing CA 1 (test.lanyard)") || text.stdout.contains("Issuing CA 1"))
        let crlNumber = try f.openssl(["crl", "-in", f.configuration.crlFile, "-noout", "-crlnumber"]).stdout
        let printedNumber = crlNumber.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().replacingOccurrences(of: "crlnumber=0x", with: "")
        #expect(UInt64(printedNumber, radix: 16) == initial.number + 1, "openssl printed \(crlNumber)")

        let refused = try f.openssl(["verify", "-attime", at, "-crl_check", "-CRLfile", f.configuration.crlFile, "-CAfile", f.layout.rootCertificate,
                                     "-untrusted", f.layout.issuingCertificate, leafPath])
        #expect(!refused.succeeded)
        #expect((refused.stdout + refused.stderr).contains("certificate revoked"))
        #expect(try verify(otherPath), "an unrevoked device still verifies")

        // The CRL file is world-readable (the broker reads it), not writable by others.
        let mode = try FileManager.default.attributesOfItem(atPath: f.configuration.crlFile)[.posixPermissions] as? Int
        #expect(mode == 0o644)

        // A second revocation bumps the number again.
        let second = try f.revocation.revoke(RevokeParams(id: "gw-2", reason: "cessationOfOperation"), actor: "test")
        #expect(second.crlNumber == initial.number + 2)
        #expect(Set(try unwrapped(f.crl.current()).revokedSerials) == [serial, try unwrapped(other.serial)])
    }

    @Test("revocation runs the broker reload command")
    func revokeReloadsBroker() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        #expect(!FileManager.default.fileExists(atPath: f.reloadFlag))
        let result = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "superseded"), actor: "test")
        #expect(result.brokerReloaded)
        #expect(FileManager.default.fileExists(atPath: f.reloadFlag))
    }

    @Test("the revoke command is a JWS whose claims are right and which the device's CommandVerifier accepts")
    func revokeCommand() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        _ = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "test")

        let messages = f.transport.published
        try #require(messages.count == 1)
        #expect(messages[0].topic == "lanyard/v1/dev/gw-1/cmd")
        let compact = String(decoding: messages[0].payload, as: UTF8.self)
        #expect(compact.split(separator: ".", omittingEmptySubsequences: false).count == 3)

        let jws = try CompactJWS(compact: compact)
        #expect(jws.algorithm == "ES256")
        let claims = try JSONDecoder().decode(CommandClaims.self, from: Data(jws.payloadJSON))
        let now = Int64(f.clock.now.timeIntervalSince1970)
        #expect(claims.sub == "gw-1")
        #expect(claims.cmd == "revoke")
        #expect(claims.seq == 1)
        #expect(claims.args == ["reason": "keyCompromise"])
        #expect(claims.iss == "spiffe://test.lanyard/lanyard/controller")
        #expect(claims.iat == now)
        #expect(claims.exp == now + 3600)
        #expect(try f.sqlite("SELECT cmd || ':' || seq FROM commands WHERE jti = '\(claims.jti)'") == "revoke:1\n")

        // The device's verifier, trusting the bundle it was enrolled with.
        let verifier = CommandVerifier(trustAnchors: f.authority.bundle, trustDomain: testTrustDomain, device: try #require(DeviceID("gw-1")))
        switch verifier.verify(compact, now: f.clock.now, lastSeq: 0) {
        case .success(let accepted): #expect(accepted == claims)
        case .failure(let refusal): Issue.record("the device refused the revoke command: \(refusal)")
        }
        // Another device refuses it.
        let other = CommandVerifier(trustAnchors: f.authority.bundle, trustDomain: testTrustDomain, device: try #require(DeviceID("gw-2")))
        #expect(other.verify(compact, now: f.clock.now, lastSeq: 0).refusalCode == "wrong_subject")
        // A device that already saw seq 1 refuses it as a replay.
        #expect(verifier.verify(compact, now: f.clock.now, lastSeq: 1).refusalCode == "replayed")
    }

    @Test("revoking twice answers invalid_transition and changes nothing")
    func revokeTwice() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        let first = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "test")
        f.clock.advance(60)
        #expect(wireCode { _ = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "superseded"), actor: "test") } == "invalid_transition")
        #expect(try f.register.show("gw-1").revocationReason == "keyCompromise")
        #expect(f.crl.current()?.number == first.crlNumber)
        #expect(f.transport.published.count == 1)
    }

    @Test("an unknown reason answers bad_request and revokes nothing", arguments: ["compromised", "", "KeyCompromise", "removeFromCRL"])
    func revokeUnknownReason(_ reason: String) throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        #expect(wireCode { _ = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: reason), actor: "test") } == "bad_request")
        #expect(try f.register.show("gw-1").state == "active")
        #expect(f.transport.published.isEmpty)
    }

    @Test("revoking an unknown or malformed device answers not_found / bad_request")
    func revokeUnknownDevice() throws {
        let f = try ControllerFixture()
        #expect(wireCode { _ = try f.revocation.revoke(RevokeParams(id: "ghost", reason: "superseded"), actor: "test") } == "not_found")
        #expect(wireCode { _ = try f.revocation.revoke(RevokeParams(id: "Bad/Id", reason: "superseded"), actor: "test") } == "bad_request")
    }

    @Test("revoking an approved device voids its unused enrollment token")
    func revokeApprovedVoidsToken() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let result = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "privilegeWithdrawn"), actor: "test")
        #expect(result.revokedSerials.isEmpty)
        #expect(try f.sqlite("SELECT count(*) FROM enrollment_tokens") == "0\n")
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token).errorCode == "revoked")
    }

    @Test("a repeated renewal request after revocation does not return the revoked certificate")
    func repeatedRequestAfterRevocation() throws {
        let f = try ControllerFixture()
        _ = try f.enrolled("gw-1")
        let key = try PrivateKey.generateP256()
        let id = makeRequestID()
        #expect(try f.renew("gw-1", key: key, requestID: id).status == "issued")
        _ = try f.revocation.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "test")
        #expect(try f.renew("gw-1", key: key, requestID: id).errorCode == "revoked")
    }

    @Test("when the CRL cannot be written, the device is still told to stop (revoke command sent) and the CRL catches up")
    func revokeWhenCRLWriteFails() throws {
        let f = try ControllerFixture()
        let (_, reply) = try f.enrolled("gw-1")
        var broken = f.configuration
        broken.crlFile = f.directory + "/missing-dir/crl.pem"
        let log = Logger(component: "controller-test", minimum: .error)
        let crl = CRLPublisher(store: f.store, authority: f.authority, configuration: broken, clock: f.clock.function, log: log)
        let service = RevocationService(store: f.store, crl: crl, commands: f.commands, clock: f.clock.function)
        let outcome = Result { try service.revoke(RevokeParams(id: "gw-1", reason: "keyCompromise"), actor: "test") }
        // The register already says revoked: renewals stop whatever happened to the CRL.
        #expect(try f.register.show("gw-1").state == "revoked")
        // The agent must still be told to erase its key: the revoke command goes out even if the CRL step failed.
        #expect(f.transport.published.count == 1, "no revoke command was sent (revoke returned \(outcome))")
        // And the operator cannot simply retry: a second call answers invalid_transition. The CRL, once
        // writable again, must list the serial on the next publication.
        try FileManager.default.createDirectory(atPath: f.directory + "/missing-dir", withIntermediateDirectories: false)
        #expect(try crl.refreshIfDue())
        #expect(try crl.current()?.revokedSerials == [try unwrapped(reply.serial)])
    }

    @Test("refreshIfDue republishes only when the CRL is within refresh_before of nextUpdate")
    func crlRefresh() throws {
        let f = try ControllerFixture()
        #expect(try f.crl.refreshIfDue())  // no CRL on disk yet
        let first = try #require(f.crl.current())
        #expect(first.nextUpdate == f.clock.now.addingTimeInterval(7 * 86400))
        f.clock.advance(3 * 86400)  // 4 days left > refresh_before (3 days)
        #expect(try f.crl.refreshIfDue() == false)
        #expect(f.crl.current()?.number == first.number)
        f.clock.advance(86400 + 1)  // under 3 days left
        #expect(try f.crl.refreshIfDue())
        #expect(f.crl.current()?.number == (first.number ?? 0) + 1)
        // The CRL is signed by the issuing CA.
        #expect(try unwrapped(f.crl.current()).isIssued(by: f.authority.certificate))
    }
}

extension Result where Failure == CommandRefusal {
    var refusalCode: String? {
        if case .failure(let refusal) = self { return refusal.code }
        return nil
    }
}
