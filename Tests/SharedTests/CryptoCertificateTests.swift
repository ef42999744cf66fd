import Foundation
import Testing

import Shared

@Suite("Crypto: certificates we issue, checked with openssl")
struct CryptoCertificateTests {
    @Test("root → issuing → leaf chain passes `openssl verify` and our own checks", arguments: CryptoTestClock.allCases)
    func chainPassesOpenSSLVerify(clock: CryptoTestClock) throws {
        let pki = try CryptoTestPKI(now: clock.date)
        let (_, leaf) = try pki.issueDevice("gw-17")
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try pki.writeCAs(to: dir)
        try dir.write("leaf.pem", leaf.pem, mode: 0o644)

        let attime = String(Int(clock.date.timeIntervalSince1970))
        let result = try CryptoTools.openssl(
            ["verify", "-attime", attime, "-CAfile", "root.pem", "-untrusted", "issuing.pem", "leaf.pem"], in: dir)
        #expect(result.status == 0, "openssl verify: \(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("leaf.pem: OK"))

        // Same verdict from our verifier, and the issuer links are right.
        let verdict = ChainVerifier(trustAnchors: [pki.root]).verify(leaf, intermediates: [pki.issuing], at: clock.date)
        #expect(verdict.ok, "\(verdict.reason ?? "")")
        #expect(verdict.errorCode == 0)
        #expect(leaf.isIssued(by: pki.issuing))
        #expect(!leaf.isIssued(by: pki.root))
        #expect(pki.issuing.isIssued(by: pki.root))
        #expect(pki.root.isIssued(by: pki.root))
    }

    @Test("the leaf carries exactly the CSR's key, its key identifiers are OpenSSL's: SKI = SHA-1 of the key bits, AKI = the issuer's SKI (root, issuing and leaf)")
    func keyAndKeyIdentifiers() throws {
        let pki = try CryptoTestPKI(now: Date())
        let (key, leaf) = try pki.issueDevice("gw-18")
        // Read back from the DER alone, not from the wrapper the issuer handed over.
        #expect(try Certificate(der: leaf.der).publicKey == key.publicKey)
        #expect(try Certificate(der: pki.issuing.der).publicKey == pki.issuingKey.publicKey)
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        func identifiers(_ name: String, _ cert: Certificate) throws -> (ski: String, aki: String?, keyHash: String) {
            try dir.write(name, cert.pem, mode: 0o644)
            let text = try CryptoTools.openssl(["x509", "-in", name, "-noout", "-ext", "subjectKeyIdentifier,authorityKeyIdentifier"], in: dir).stdout
            let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            func value(after heading: String) -> String? {
                guard let i = lines.firstIndex(where: { $0.hasPrefix(heading) }), i + 1 < lines.count else { return nil }
                return lines[i + 1].replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "keyid", with: "").lowercased()
            }
            // The subjectPublicKey BIT STRING's content is the last 65 bytes of a P-256 SPKI.
            try Data(cert.publicKey.spkiDER.suffix(65)).write(to: URL(fileURLWithPath: dir.path(name + ".bits")))
            let keyHash = String(try CryptoTools.openssl(["dgst", "-sha1", "-r", name + ".bits"], in: dir).stdout.prefix(40))
            return (value(after: "X509v3 Subject Key Identifier") ?? "", value(after: "X509v3 Authority Key Identifier"), keyHash)
        }
        let root = try identifiers("root.pem", pki.root)
        let issuing = try identifiers("issuing.pem", pki.issuing)
        let leafIDs = try identifiers("leaf.pem", leaf)
        #expect(root.ski == root.keyHash)
        #expect(issuing.ski == issuing.keyHash && issuing.aki == root.ski)
        #expect(leafIDs.ski == leafIDs.keyHash && leafIDs.aki == issuing.ski)
    }

    @Test("`openssl x509 -text` shows CA:FALSE, Digital Signature, clientAuth and the URI SAN; serial is 128-bit random and positive")
    func leafContentsAsOpenSSLSeesThem() throws {
        let pki = try CryptoTestPKI(now: CryptoTestClock.fixedReference.date)
        let template = pki.deviceTemplate("gw-17")
        let (_, leaf) = try pki.issueDevice("gw-17", template: template)
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("leaf.pem", leaf.pem, mode: 0o644)
        try dir.write("root.pem", pki.root.pem, mode: 0o644)
        try dir.write("issuing.pem", pki.issuing.pem, mode: 0o644)

        let text = try CryptoTools.openssl(["x509", "-in", "leaf.pem", "-noout", "-text"], in: dir)
        #expect(text.status == 0)
        #expect(text.stdout.contains("Version: 3 (0x2)"))
        #expect(text.stdout.contains("CA:FALSE"))
        #expect(text.stdout.contains("X509v3 Basic Constraints: critical"))
        #expect(text.stdout.contains("X509v3 Key Usage: critical"))
        #expect(text.stdout.contains("Digital Signature"))
        #expect(!text.stdout.contains("Certificate Sign"))
        #expect(text.stdout.contains("TLS Web Client Authentication"))
        #expect(text.stdout.contains("URI:spiffe://lanyard.test/device/gw-17"))
        #expect(text.stdout.contains("X509v3 Subject Key Identifier"))
        #expect(text.stdout.contains("X509v3 Authority Key Identifier"))
        #expect(text.stdout.contains("Signature Algorithm: ecdsa-with-SHA256"))
        #expect(text.stdout.contains("Subject: CN = gw-17"))

        // The serial: the 16 bytes we chose, positive (top bit clear), first byte non-zero.
        #expect(template.serial.count == 16)
        #expect(template.serial[0] & 0x80 == 0 && template.serial[0] != 0)
        var expectedHex = Digest.hex(template.serial)
        while expectedHex.hasPrefix("0") { expectedHex.removeFirst() }
        #expect(leaf.serialHex == expectedHex)
        let serial = try CryptoTools.openssl(["x509", "-in", "leaf.pem", "-noout", "-serial"], in: dir)
        #expect(serial.stdout.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "serial=" + Digest.hex(template.serial))
        #expect(Set((0..<50).map { _ in CertificateTemplate.randomSerial() }).count == 50)

        // Our parser reads back what the template asked for.
        #expect(leaf.commonName == "gw-17")
        #expect(leaf.issuerCommonName == pki.issuing.commonName)
        #expect(leaf.uriSANs == ["spiffe://lanyard.test/device/gw-17"])
        #expect(leaf.dnsSANs.isEmpty)
        #expect(leaf.extendedKeyUsages == [ExtendedKeyUsage.clientAuth])
        #expect(!leaf.isCA)
        #expect(leaf.notBefore == template.notBefore)
        #expect(leaf.notAfter == template.notAfter)
        #expect(leaf.publicKey.algorithm == .p256)
        #expect(try Certificate(der: leaf.der) == leaf)
        #expect(try Certificate(pem: leaf.pem) == leaf)

        // CA certificates: root has no AKI (self-signed), both are CA:TRUE with pathlen.
        let rootText = try CryptoTools.openssl(["x509", "-in", "root.pem", "-noout", "-text"], in: dir)
        #expect(rootText.stdout.contains("CA:TRUE, pathlen:1"))
        #expect(rootText.stdout.contains("Certificate Sign, CRL Sign"))
        #expect(!rootText.stdout.contains("Authority Key Identifier"))
        #expect(rootText.stdout.contains("O = Lanyard Tests"))
        let issuingText = try CryptoTools.openssl(["x509", "-in", "issuing.pem", "-noout", "-text"], in: dir)
        #expect(issuingText.stdout.contains("CA:TRUE, pathlen:0"))
        #expect(issuingText.stdout.contains("Authority Key Identifier"))
        #expect(pki.root.isCA && pki.issuing.isCA)
    }

    @Test("a chain PEM parses in order, round-trips, and an empty or oversized PEM is refused")
    func chainPEM() throws {
        let pki = try CryptoTestPKI(now: Date())
        let (_, leaf) = try pki.issueDevice("gw-1")
        let bundle = Certificate.pem(of: [leaf, pki.issuing, pki.root])
        let parsed = try Certificate.chain(fromPEM: bundle)
        #expect(parsed == [leaf, pki.issuing, pki.root])
        #expect(try Certificate(pem: bundle) == leaf)
        #expect(throws: CryptoError.self) { try Certificate.chain(fromPEM: "no certificates here") }
        let big = String(repeating: "A", count: 64 * 1024 + 1)
        let error = try #require(throws: CryptoError.self) { try Certificate(pem: big) }
        #expect(error.code == "too_large")
        let derError = try #require(throws: CryptoError.self) { try Certificate(der: leaf.der + [0]) }
        #expect(derError.code == "bad_der")
    }

    @Test("server certificates carry DNS and IP SANs; SANs with spaces or bad OIDs are refused")
    func serverSANsAndValidation() throws {
        let pki = try CryptoTestPKI(now: Date())
        var template = pki.deviceTemplate("lanyard-broker")
        template.uriSANs = []
        template.dnsSANs = ["broker.lanyard.test"]
        template.ipSANs = ["127.0.0.1", "::1"]
        template.extendedKeyUsages = [ExtendedKeyUsage.serverAuth]
        template.keyUsage = [.digitalSignature, .keyEncipherment]
        let (_, server) = try pki.issueDevice("lanyard-broker", template: template)
        #expect(server.dnsSANs == ["broker.lanyard.test"])
        #expect(server.ipSANs == ["127.0.0.1", "0:0:0:0:0:0:0:1"])
        #expect(server.extendedKeyUsages == [ExtendedKeyUsage.serverAuth])

        var bad = pki.deviceTemplate("gw-1")
        bad.uriSANs = ["spiffe://x/device/a, DNS:evil"]
        #expect(throws: CryptoError.self) { try pki.issueDevice("gw-1", template: bad) }
        bad = pki.deviceTemplate("gw-1")
        bad.extendedKeyUsages = ["clientAuth"]
        #expect(throws: CryptoError.self) { try pki.issueDevice("gw-1", template: bad) }
        bad = pki.deviceTemplate("gw-1")
        bad.serial = [0x80] + Array(repeating: 1, count: 15)
        #expect(throws: CryptoError.self) { try pki.issueDevice("gw-1", template: bad) }
        // A leaf cannot issue: it is not a CA.
        let (leafKey, leaf) = try pki.issueDevice("gw-2")
        #expect(throws: CryptoError.self) {
            try CertificateIssuer.sign(pki.deviceTemplate("gw-3"), subjectKey: leafKey.publicKey, issuer: leaf, issuerKey: leafKey)
        }
        // The issuer key must match the issuer certificate.
        #expect(throws: CryptoError.self) {
            try CertificateIssuer.sign(pki.deviceTemplate("gw-3"), subjectKey: leafKey.publicKey, issuer: pki.issuing, issuerKey: pki.rootKey)
        }
    }

    @Test("the command-signing EKU (private UUID arc) round-trips through openssl")
    func commandSigningEKU() throws {
        let pki = try CryptoTestPKI(now: Date())
        var template = pki.deviceTemplate("lanyard-commands")
        template.uriSANs = ["spiffe://lanyard.test/lanyard/commands"]
        template.extendedKeyUsages = [ExtendedKeyUsage.lanyardCommandSigning]
        let (_, signer) = try pki.issueDevice("lanyard-commands", template: template)
        #expect(signer.extendedKeyUsages == [ExtendedKeyUsage.lanyardCommandSigning])
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("signer.pem", signer.pem, mode: 0o644)
        let text = try CryptoTools.openssl(["x509", "-in", "signer.pem", "-noout", "-ext", "extendedKeyUsage"], in: dir)
        #expect(text.stdout.contains(ExtendedKeyUsage.lanyardCommandSigning))
    }
}

@Suite("Crypto: certificate signing requests")
struct CryptoCSRTests {
    @Test("our CSR passes `openssl req -verify`, has only CN and no extensions")
    func ourCSRVerifies() throws {
        let key = try PrivateKey.generateP256()
        let csr = try CertificateSigningRequest.make(commonName: "gw-17", key: key)
        #expect(csr.verifySignature())
        #expect(csr.commonName == "gw-17")
        #expect(csr.requestedExtensionCount == 0)
        #expect(csr.publicKey == key.publicKey)
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("csr.pem", csr.pem, mode: 0o644)
        let result = try CryptoTools.openssl(["req", "-in", "csr.pem", "-verify", "-noout", "-text"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("verify OK"))
        #expect(result.stdout.contains("Subject: CN = gw-17"))
        // openssl 3.0 always prints an empty "Requested Extensions:" heading; no X509v3 extension follows it.
        #expect(result.stdout.contains("Attributes:\n            (none)"))
        #expect(!result.stdout.contains("X509v3"))
    }

    @Test("a CSR whose signature has one flipped byte fails verifySignature (and openssl agrees)")
    func tamperedCSRSignature() throws {
        let key = try PrivateKey.generateP256()
        let good = try CertificateSigningRequest.make(commonName: "gw-17", key: key)
        var der = good.der
        der[der.count - 1] ^= 0x01  // last byte lies inside the signature's s INTEGER
        let badPEM = Self.pem(der, label: "CERTIFICATE REQUEST")
        let bad = try CertificateSigningRequest(pem: badPEM)
        #expect(bad.commonName == "gw-17")
        #expect(!bad.verifySignature())
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("bad.pem", badPEM, mode: 0o644)
        // openssl 3.0 `req -verify` exits 0 even on failure, so read its verdict.
        let result = try CryptoTools.openssl(["req", "-in", "bad.pem", "-verify", "-noout"], in: dir)
        #expect((result.stdout + result.stderr).contains("verify failure"))
        #expect(!(result.stdout + result.stderr).contains("verify OK"))
    }

    @Test("a CSR made by `openssl req` with extensions reports them; the issuer never copies them")
    func opensslCSRWithExtensions() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let key = try PrivateKey.generateP256()
        try dir.write("key.pem", try key.pkcs8PEM())
        let made = try CryptoTools.openssl(
            ["req", "-new", "-key", "key.pem", "-subj", "/CN=gw-evil", "-out", "csr.pem",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "subjectAltName=DNS:evil.example"], in: dir)
        try #require(made.status == 0, "\(made.stderr)")
        let csr = try CertificateSigningRequest(pem: try dir.read("csr.pem"))
        #expect(csr.verifySignature())
        #expect(csr.requestedExtensionCount == 2)
        #expect(csr.commonName == "gw-evil")
        #expect(csr.publicKey == key.publicKey)

        let pki = try CryptoTestPKI(now: Date())
        let leaf = try CertificateIssuer.sign(
            pki.deviceTemplate("gw-evil"), subjectKey: csr.publicKey, issuer: pki.issuing, issuerKey: pki.issuingKey)
        #expect(!leaf.isCA)
        #expect(leaf.dnsSANs.isEmpty)
    }

    @Test("garbage and oversized CSR input is refused with stable codes")
    func badCSRInput() throws {
        let garbage = try #require(throws: CryptoError.self) { try CertificateSigningRequest(pem: "hello") }
        #expect(garbage.code == "bad_csr")
        let big = try #require(throws: CryptoError.self) {
            try CertificateSigningRequest(pem: String(repeating: "x", count: 70_000))
        }
        #expect(big.code == "too_large")
    }

    static func pem(_ der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }
}
