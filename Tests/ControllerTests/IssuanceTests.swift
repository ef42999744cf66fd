import Foundation
import Testing

@testable import Controller
import Shared

@Suite("Issuance: enrollment and renewal")
struct IssuanceTests {
    // MARK: happy path

    @Test("an enrolled certificate carries only the device identity, CA:FALSE, digitalSignature and clientAuth")
    func enrollHappyPath() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let key = try PrivateKey.generateP256()
        let reply = try f.enroll("gw-1", key: key, token: token)
        try #require(reply.status == "issued", "\(String(describing: reply.error))")
        #expect(reply.error == nil)
        #expect(reply.renewAt == 0.66)
        #expect(reply.trustBundle == f.authority.bundlePEM)

        let chain = try Certificate.chain(fromPEM: try #require(reply.chain))
        #expect(chain.count == 2)
        let cert = chain[0]
        #expect(chain[1] == f.authority.certificate)
        #expect(cert.commonName == "gw-1")
        #expect(cert.uriSANs == ["spiffe://test.lanyard/device/gw-1"])
        #expect(cert.dnsSANs.isEmpty)
        #expect(cert.ipSANs.isEmpty)
        #expect(cert.isCA == false)
        #expect(cert.extendedKeyUsages == [ExtendedKeyUsage.clientAuth])
        #expect(cert.publicKey == key.publicKey)
        #expect(cert.serialHex == reply.serial)

        // Validity: notBefore backdated by `backdate` (5 min), TTL from the class (1 day).
        let now = referenceTime
        #expect(cert.notBefore == now.addingTimeInterval(-300))
        #expect(cert.notAfter == now.addingTimeInterval(86400))
        #expect(reply.notBefore == Int64(now.timeIntervalSince1970) - 300)
        #expect(reply.notAfter == Int64(now.timeIntervalSince1970) + 86400)
        #expect(reply.issuedAt == Int64(now.timeIntervalSince1970))

        // Serial: a positive 16-byte (128-bit field) integer with its top byte non-zero.
        let serial = try #require(reply.serial)
        #expect(serial.count == 31 || serial.count == 32)
        #expect(serial.allSatisfy { $0.isHexDigit })
        let padded = serial.count % 2 == 1 ? "0" + serial : serial
        #expect(padded.count / 2 == 16)
        let topByte = try #require(UInt8(padded.prefix(2), radix: 16))
        #expect(topByte != 0 && topByte < 0x80)

        // Register: the device is active, the certificate recorded with the key fingerprint.
        let view = try f.register.show("gw-1")
        #expect(view.state == "active")
        #expect(view.serial == serial)
        #expect(view.certificates?.first?.keyFingerprint == key.publicKey.fingerprint)
        #expect(view.certificates?.first?.kind == "enroll")
        #expect(try f.sqlite("SELECT used_at FROM enrollment_tokens") == "\(Int64(now.timeIntervalSince1970))\n")
    }

    @Test("openssl verifies the enrolled chain and shows exactly the expected extensions")
    func enrollOpenSSLView() throws {
        let f = try ControllerFixture()
        let (_, reply) = try f.enrolled("gw-1")
        let chain = try Certificate.chain(fromPEM: try #require(reply.chain))
        let leafPath = try f.write("leaf.pem", chain[0].pem)
        let at = String(Int64(f.clock.now.timeIntervalSince1970))

        let verify = try f.openssl(["verify", "-attime", at, "-CAfile", f.layout.rootCertificate, "-untrusted", f.layout.issuingCertificate,
                                    "-purpose", "sslclient", leafPath])
        #expect(verify.succeeded, "openssl verify: \(verify.stdout) \(verify.stderr)")
        #expect(verify.stdout.contains("leaf.pem: OK"))

        // Not as a server certificate: no serverAuth.
        let asServer = try f.openssl(["verify", "-attime", at, "-CAfile", f.layout.rootCertificate, "-untrusted", f.layout.issuingCertificate,
                                      "-purpose", "sslserver", leafPath])
        #expect(!asServer.succeeded)

        // Not by a foreign root.
        let other = try ControllerFixture()
        let foreign = try f.openssl(["verify", "-attime", at, "-CAfile", other.layout.rootCertificate, "-untrusted", f.layout.issuingCertificate, leafPath])
        #expect(!foreign.succeeded)

        let text = try f.openssl(["x509", "-in", leafPath, "-noout", "-text"])
        try #require(text.succeeded, "\(text.stderr)")
        let out = text.stdout
        #expect(out.contains("Subject: CN = gw-1") || out.contains("Subject: CN=gw-1"))
        #expect(out.contains("CA:FALSE"))
        #expect(out.contains("X509v3 Basic Constraints: critical"))
        #expect(out.contains("X509v3 Key Usage: critical"))
        #expect(out.contains("Digital Signature"))
        #expect(!out.contains("Key Encipherment"))
        #expect(!out.contains("Certificate Sign"))
        #expect(out.contains("TLS Web Client Authentication"))
        #expect(!out.contains("TLS Web Server Authentication"))
        #expect(out.contains("URI:spiffe://test.lanyard/device/gw-1"))
        #expect(!out.contains("DNS:"))
        #expect(out.contains("Public Key Algorithm: id-ecPublicKey"))
        #expect(out.contains("ecdsa-with-SHA256"))

        let serial = try f.openssl(["x509", "-in", leafPath, "-noout", "-serial"])
        let printed = serial.stdout.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
        #expect(String(printed.drop(while: { $0 == "0" })).lowercased() == reply.serial)
    }

    @Test("every certificate gets a different serial")
    func serialsDiffer() throws {
        let f = try ControllerFixture()
        var serials: Set<String> = []
        for i in 0..<5 {
            let (_, reply) = try f.enrolled("gw-\(i)")
            serials.insert(try #require(reply.serial))
        }
        #expect(serials.count == 5)
    }

    @Test("the TTL comes from the device's class")
    func ttlFromClass() throws {
        let f = try ControllerFixture()
        let (_, reply) = try f.enrolled("gw-fixed", class: "fixed", owners: ["ops": "ot"])
        let cert = try leaf(of: reply)
        #expect(cert.notAfter.timeIntervalSince(referenceTime) == 7200)
        #expect(cert.notBefore.timeIntervalSince(referenceTime) == -300)
    }

    // MARK: refusals

    @Test("a CSR naming another device is refused with identity_mismatch; the token stays usable")
    func csrForAnotherDevice() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        let token = try f.approve("gw-1").token
        let key = try PrivateKey.generateP256()
        let reply = try f.enroll("gw-1", key: key, token: token, csrCommonName: "gw-2")
        #expect(reply.status == "error")
        #expect(reply.errorCode == "identity_mismatch")
        #expect(reply.chain == nil)
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "0\n")
        #expect(try f.enroll("gw-1", key: key, token: token).status == "issued")
    }

    @Test("a request naming another device than its topic is refused with identity_mismatch")
    func requestOnAnotherTopic() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        let token = try f.approve("gw-1").token
        // gw-1's request (CSR and token for gw-1) published on gw-2's topic.
        let reply = try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token, topic: "gw-2")
        #expect(reply.errorCode == "identity_mismatch")
        #expect(try f.register.show("gw-2").state == "registered")
    }

    @Test("a CSR whose signature does not verify is refused with bad_csr")
    func csrBadSignature() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let key = try PrivateKey.generateP256()
        let good = try CertificateSigningRequest.make(commonName: "gw-1", key: key)
        var der = good.der
        der[der.count - 1] ^= 0x01  // last byte of the ECDSA signature
        let tampered = pemArmor(der, label: "CERTIFICATE REQUEST")
        // Still parses, but the signature does not verify.
        let parsed = try CertificateSigningRequest(pem: tampered)
        #expect(parsed.verifySignature() == false)
        #expect(try f.enroll("gw-1", csrPEM: tampered, token: token).errorCode == "bad_csr")
        #expect(try f.sqlite("SELECT used_at IS NULL FROM enrollment_tokens") == "1\n")
    }

    @Test("garbage, empty or oversized CSRs are refused with bad_csr", arguments: [
        "not a csr", "", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", String(repeating: "A", count: 9000),
    ])
    func csrGarbage(_ csr: String) throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        #expect(try f.enroll("gw-1", csrPEM: csr, token: token).errorCode == "bad_csr")
    }

    @Test("a used token is refused with token_used")
    func tokenReused() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token).status == "issued")
        let again = try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token)
        #expect(again.errorCode == "token_used")
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "1\n")
    }

    @Test("an expired token is refused with token_expired (clock advanced, not slept)")
    func tokenExpired() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        let token1 = try f.approve("gw-1", tokenTTL: 120).token
        let token2 = try f.approve("gw-2", tokenTTL: 120).token
        // One second before expiry the token still works...
        f.clock.advance(119)
        #expect(try f.enroll("gw-2", key: try PrivateKey.generateP256(), token: token2).status == "issued")
        // ...at expiry it does not.
        f.clock.advance(1)
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token1).errorCode == "token_expired")
        #expect(try f.register.show("gw-1").state == "approved")
    }

    @Test("a wrong token, or another device's token, is refused with bad_token")
    func wrongToken() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        try f.add("gw-2")
        _ = try f.approve("gw-1")
        let other = try f.approve("gw-2").token
        let key = try PrivateKey.generateP256()
        #expect(try f.enroll("gw-1", key: key, token: "lyt_wrong").errorCode == "bad_token")
        #expect(try f.enroll("gw-1", key: key, token: other).errorCode == "bad_token")
        #expect(try f.enroll("gw-1", key: key, token: "").errorCode == "bad_token")
    }

    @Test("a registered but unapproved device is refused with not_approved")
    func notApproved() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: "lyt_x").errorCode == "not_approved")
    }

    @Test("a device not in the register is refused with not_registered")
    func notRegistered() throws {
        let f = try ControllerFixture()
        #expect(try f.enroll("ghost", key: try PrivateKey.generateP256(), token: "lyt_x").errorCode == "not_registered")
        #expect(try f.renew("ghost", key: try PrivateKey.generateP256()).errorCode == "not_registered")
    }

    @Test("malformed request ids are refused with bad_request", arguments: ["short", String(repeating: "a", count: 65), "has space in it", "abc/def/ghi"])
    func badRequestID(_ requestID: String) throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token, requestID: requestID).errorCode == "bad_request")
    }

    @Test("a P-384 key is refused with key_type_not_allowed for a P-256-only class")
    func keyTypeNotAllowed() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let keyPath = f.path("p384.key")
        try #require(try f.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", keyPath]).succeeded)
        let csr = try f.openssl(["req", "-new", "-key", keyPath, "-subj", "/CN=gw-1"])
        try #require(csr.succeeded, "\(csr.stderr)")
        #expect(try f.enroll("gw-1", csrPEM: csr.stdout, token: token).errorCode == "key_type_not_allowed")
    }

    // MARK: idempotence

    @Test("a repeated request (same request id, same CSR) gets the same certificate")
    func idempotentRepeat() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let key = try PrivateKey.generateP256()
        let csr = try CertificateSigningRequest.make(commonName: "gw-1", key: key).pem
        let id = makeRequestID()
        let first = try f.enroll("gw-1", csrPEM: csr, token: token, requestID: id)
        f.clock.advance(30)
        let second = try f.enroll("gw-1", csrPEM: csr, token: token, requestID: id)
        try #require(first.status == "issued")
        #expect(second.status == "issued")
        #expect(second.serial == first.serial)
        #expect(second.chain == first.chain)
        #expect(second.issuedAt == first.issuedAt)
        #expect(second.requestId == id)
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "1\n")
    }

    @Test("the same request id with another key is refused with bad_request")
    func sameRequestIDOtherKey() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let id = makeRequestID()
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token, requestID: id).status == "issued")
        #expect(try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: token, requestID: id).errorCode == "bad_request")
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "1\n")
    }

    // MARK: key reuse

    @Test("a public key already bound to another device is refused with key_reused")
    func keyBoundToAnotherDevice() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1")
        try f.add("gw-2")
        let token = try f.approve("gw-2").token
        let reply = try f.enroll("gw-2", key: key, token: token)
        #expect(reply.errorCode == "key_reused")
        // The refusal rolled back: the token is still unused and gw-2 still approved.
        #expect(try f.register.show("gw-2").state == "approved")
        #expect(try f.sqlite("SELECT used_at IS NULL FROM enrollment_tokens WHERE device_id = 'gw-2'") == "1\n")
    }

    @Test("a key shared across devices is refused even for a class that does not rotate keys")
    func keyBoundToAnotherDeviceNoRotation() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1", class: "fixed", owners: ["ops": "ot"])
        try f.add("gw-2", class: "fixed", owners: ["ops": "ot"])
        let token = try f.approve("gw-2").token
        #expect(try f.enroll("gw-2", key: key, token: token).errorCode == "key_reused")
    }

    @Test("renewal with a new key is issued as kind renew")
    func renewHappyPath() throws {
        let f = try ControllerFixture()
        let (_, first) = try f.enrolled("gw-1")
        f.clock.advance(3600)
        let key = try PrivateKey.generateP256()
        let reply = try f.renew("gw-1", key: key, currentSerial: try #require(first.serial))
        try #require(reply.status == "issued", "\(String(describing: reply.error))")
        #expect(reply.serial != first.serial)
        let cert = try leaf(of: reply)
        #expect(cert.publicKey == key.publicKey)
        #expect(cert.notAfter == referenceTime.addingTimeInterval(3600 + 86400))
        #expect(try f.sqlite("SELECT kind FROM certificates ORDER BY issued_at") == "enroll\nrenew\n")
    }

    @Test("a renewal reusing the same key is refused with key_reused when rotate_keys = true")
    func renewSameKeyRotating() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1")
        #expect(try f.renew("gw-1", key: key).errorCode == "key_reused")
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "1\n")
    }

    @Test("a renewal reusing the same key is issued when the class has rotate_keys = false")
    func renewSameKeyNotRotating() throws {
        let f = try ControllerFixture()
        let (key, _) = try f.enrolled("gw-1", class: "fixed", owners: ["ops": "ot"])
        #expect(try f.renew("gw-1", key: key).status == "issued")
    }

    @Test("renewal is refused for a device that never enrolled")
    func renewBeforeEnroll() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256()).errorCode == "not_approved")
        _ = try f.approve("gw-1")
        #expect(try f.renew("gw-1", key: try PrivateKey.generateP256()).errorCode == "invalid_transition")
    }

    // MARK: nothing copied from the CSR

    @Test("extensions requested in the CSR (CA:TRUE, extra SANs, serverAuth) are not copied")
    func csrExtensionsIgnored() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let token = try f.approve("gw-1").token
        let key = try PrivateKey.generateP256()
        let keyPath = try f.write("device.key", try key.pkcs8PEM())
        let req = try f.openssl([
            "req", "-new", "-key", keyPath, "-subj", "/CN=gw-1/O=Evil Corp",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth,clientAuth,codeSigning",
            "-addext", "subjectAltName=URI:spiffe://test.lanyard/device/gw-2,DNS:evil.example,IP:10.0.0.1",
        ])
        try #require(req.succeeded, "\(req.stderr)")
        let csr = try CertificateSigningRequest(pem: req.stdout)
        #expect(csr.requestedExtensionCount == 4)  // the test's premise: the CSR asks for all of it

        let reply = try f.enroll("gw-1", csrPEM: req.stdout, token: token)
        try #require(reply.status == "issued", "\(String(describing: reply.error))")
        let cert = try leaf(of: reply)
        #expect(cert.isCA == false)
        #expect(cert.uriSANs == ["spiffe://test.lanyard/device/gw-1"])
        #expect(cert.dnsSANs.isEmpty)
        #expect(cert.ipSANs.isEmpty)
        #expect(cert.extendedKeyUsages == [ExtendedKeyUsage.clientAuth])

        let text = try f.openssl(["x509", "-noout", "-text", "-in", try f.write("leaf.pem", cert.pem)]).stdout
        #expect(text.contains("CA:FALSE"))
        #expect(!text.contains("CA:TRUE"))
        #expect(!text.contains("evil.example"))
        #expect(!text.contains("Evil Corp"))
        #expect(!text.contains("10.0.0.1"))
        #expect(!text.contains("device/gw-2"))
        #expect(!text.contains("Certificate Sign"))
        #expect(!text.contains("Code Signing"))
        #expect(!text.contains("TLS Web Server Authentication"))
    }

    @Test("every refusal is audited with its code")
    func refusalsAudited() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        _ = try f.approve("gw-1")
        _ = try f.enroll("gw-1", key: try PrivateKey.generateP256(), token: "lyt_nope")
        #expect(try f.sqlite("SELECT action || ':' || outcome FROM audit WHERE actor = 'device:gw-1'") == "enroll:bad_token\n")
    }
}
