import Foundation
import Testing

import Shared

/// The controller's per-certificate shortcuts (docs/benchmarks.md §12.4) must
/// not change a single byte of what it stores, hashes or sends.
@Suite("Issuance fast paths: same bytes as the general code")
struct IssuanceFastPathTests {
    /// One CSR made by the openssl CLI with a key of each kind.
    private func opensslCSR(_ keyArgs: [String], in dir: CryptoTempDir, name: String) throws -> (csr: CertificateSigningRequest, spkiSHA256: String) {
        let key = try CryptoTools.openssl(keyArgs + ["-out", "\(name).key"], in: dir)
        try #require(key.status == 0, "\(key.stderr)")
        let req = try CryptoTools.openssl(["req", "-new", "-key", "\(name).key", "-subj", "/CN=dev-\(name)", "-out", "\(name).csr"], in: dir)
        try #require(req.status == 0, "\(req.stderr)")
        // The independent fingerprint: OpenSSL's own DER of the public key, hashed by sha256sum.
        let der = try CryptoTools.run("/bin/sh", ["-c", "openssl pkey -in \(name).key -pubout -outform DER | sha256sum"], in: dir)
        try #require(der.status == 0, "\(der.stderr)")
        let fingerprint = String(der.stdout.prefix(64))
        return (try CertificateSigningRequest(pem: try dir.read("\(name).csr")), fingerprint)
    }

    @Test("the key fingerprint read from a CSR is the one openssl computes and the one the re-encoding path gave, for P-256, P-384, RSA, Ed25519 and odd EC encodings")
    func csrKeyFingerprints() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let cases: [(String, [String], KeyAlgorithm)] = [
            ("p256", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], .p256),
            ("p384", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], .p384),
            ("rsa2048", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], .rsa(bits: 2048)),
            ("ed25519", ["genpkey", "-algorithm", "ED25519"], .ed25519),
            // Not canonical: a compressed point, and explicit curve parameters. Both go the general way.
            ("p256c", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-conv_form", "compressed"], .p256),
            ("p256x", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-param_enc", "explicit"], .other("")),
        ]
        for (name, args, algorithm) in cases {
            let (csr, expected) = try opensslCSR(args, in: dir, name: name)
            #expect(csr.verifySignature(), "\(name)")
            #expect(csr.publicKey.fingerprint == expected, "\(name): fingerprint differs from openssl pkey -pubout -outform DER | sha256sum")
            // The general path: decode the SPKI and let OpenSSL encode the key again.
            let reencoded = try PublicKey(pem: csr.publicKey.pem)
            #expect(reencoded.spkiDER == csr.publicKey.spkiDER, "\(name)")
            #expect(reencoded.fingerprint == csr.publicKey.fingerprint, "\(name)")
            if case .other = algorithm {} else { #expect(csr.publicKey.algorithm == algorithm, "\(name)") }
            #expect(csr.publicKey.algorithm == reencoded.algorithm, "\(name)")
        }
    }

    @Test("many generated P-256 keys: CSR fingerprint = the key's own encoding; the issued certificate carries exactly that key")
    func generatedKeys() throws {
        let pki = try CryptoTestPKI(now: Date())
        for index in 0..<200 {
            let key = try PrivateKey.generateP256()
            let csr = try CertificateSigningRequest(pem: CertificateSigningRequest.make(commonName: "dev-\(index)", key: key).pem)
            #expect(csr.publicKey.spkiDER == key.publicKey.spkiDER)
            #expect(csr.publicKey.fingerprint == key.publicKey.fingerprint)
            if index % 20 == 0 {
                let leaf = try CertificateIssuer.sign(pki.deviceTemplate("dev-\(index)"), subjectKey: csr.publicKey, issuer: pki.issuing, issuerKey: pki.issuingKey)
                #expect(try Certificate(der: leaf.der).publicKey.spkiDER == key.publicKey.spkiDER)
            }
        }
    }

    @Test("a private key's public half and a certificate's key, made from the point without OpenSSL's encoder, are the bytes openssl computes, for P-256, P-384, RSA, Ed25519 and a compressed point")
    func keyAndCertificateFingerprints() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let cases: [(String, [String])] = [
            ("p256", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            ("p384", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            ("rsa2048", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            ("ed25519", ["genpkey", "-algorithm", "ED25519"]),
            ("p256c", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-conv_form", "compressed"]),
        ]
        for (name, args) in cases {
            let made = try CryptoTools.openssl(args + ["-out", "\(name).key"], in: dir)
            try #require(made.status == 0, "\(made.stderr)")
            let cert = try CryptoTools.openssl(["req", "-x509", "-new", "-key", "\(name).key", "-subj", "/CN=\(name)", "-days", "1", "-out", "\(name).crt"], in: dir)
            try #require(cert.status == 0, "\(cert.stderr)")
            let der = try CryptoTools.run("/bin/sh", ["-c", "openssl pkey -in \(name).key -pubout -outform DER | sha256sum"], in: dir)
            try #require(der.status == 0, "\(der.stderr)")
            let expected = String(der.stdout.prefix(64))
            let key = try PrivateKey(pem: try dir.read("\(name).key"))
            let certificate = try Certificate(pem: try dir.read("\(name).crt"))
            #expect(key.publicKey.fingerprint == expected, "\(name): private key's public half")
            #expect(certificate.publicKey.fingerprint == expected, "\(name): certificate's key")
            #expect(key.publicKey == certificate.publicKey, "\(name)")
            // The decoded-and-re-encoded key agrees, and the certificate's signature verifies with the fast-path key.
            #expect(try PublicKey(pem: key.publicKey.pem).spkiDER == key.publicKey.spkiDER, "\(name)")
            #expect(certificate.isIssued(by: certificate), "\(name): self-signature verified with the certificate's key")
        }
        // Generated keys: the fast path gives what the encoder gives.
        for _ in 0..<50 {
            let key = try PrivateKey.generateP256()
            #expect(try PublicKey(pem: key.publicKey.pem).spkiDER == key.publicKey.spkiDER)
            #expect(key.publicKey.algorithm == .p256)
        }
    }

    @Test("a P-384 CSR key goes into the certificate unchanged (legacy copy on a shared curve group)")
    func p384Leaf() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let pki = try CryptoTestPKI(now: Date())
        let (csr, expected) = try opensslCSR(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], in: dir, name: "p384")
        let leaf = try CertificateIssuer.sign(pki.deviceTemplate("dev-p384"), subjectKey: csr.publicKey, issuer: pki.issuing, issuerKey: pki.issuingKey)
        let reread = try Certificate(der: leaf.der)
        #expect(reread.publicKey.fingerprint == expected)
    }

    @Test("PEM armour is the same as the previous encoder's for every length 0…300")
    func pemArmour() throws {
        for length in 0...300 {
            let der = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length) }
            #expect(Self.referencePEM(der, label: "TEST") == Self.pem(der, label: "TEST"), "length \(length)")
        }
        // And against Foundation's base64 in 64-column lines.
        let der = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let foundation = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        #expect(Self.pem(der, label: "X") == "-----BEGIN X-----\n\(foundation)\n-----END X-----\n")
    }

    /// The armour through the package API (a certificate's PEM is `pemEncode` of its DER).
    private static func pem(_ der: [UInt8], label: String) -> String { PEMArmour.encode(der, label: label) }

    /// The encoder as it was before (Base64.encode + 64-character slices).
    private static func referencePEM(_ der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString()
        var out = "-----BEGIN \(label)-----\n"
        var index = body.startIndex
        while index < body.endIndex {
            let next = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            out += body[index..<next] + "\n"
            index = next
        }
        out += "-----END \(label)-----\n"
        return out
    }

    @Test("string arrays: the hand-written JSON is JSONEncoder's for every Unicode scalar")
    func stringArraysEveryScalar() throws {
        var scalars: [Unicode.Scalar] = []
        for value in UInt32(0)...0x10FFFF { if let scalar = Unicode.Scalar(value) { scalars.append(scalar) } }
        var index = 0
        while index < scalars.count {
            let chunk = scalars[index..<min(index + 512, scalars.count)]
            var text = ""
            text.unicodeScalars.append(contentsOf: chunk)
            let fields = ["lanyard-audit-v1", text, "", "a\"b\\c/d", String(chunk.first!)]
            #expect(WireCodec.encodeStrings(fields) == WireCodec.encode(fields), "scalars from \(chunk.first!.value)")
            index += 512
        }
        for value in UInt32(0)..<0x80 {
            let one = [String(Unicode.Scalar(UInt8(value)))]
            #expect(WireCodec.encodeStrings(one) == WireCodec.encode(one), "scalar \(value)")
        }
        #expect(WireCodec.encodeStrings([]) == WireCodec.encode([String]()))
    }

    @Test("certificate replies: the hand-written JSON is JSONEncoder's (sorted keys, slashes unescaped), and decodes back")
    func replies() throws {
        let pki = try CryptoTestPKI(now: Date())
        let (_, leaf) = try pki.issueDevice("dev-json")
        let chain = Certificate.pem(of: [leaf, pki.issuing])
        let bundle = Certificate.pem(of: [pki.root, pki.issuing])
        var samples: [CertificateReply] = [
            CertificateReply(requestId: makeRequestID(), status: "issued", chain: chain, trustBundle: bundle, serial: leaf.serialHex,
                             notBefore: 1_700_000_000, notAfter: 1_800_000_000, issuedAt: 1_700_000_300, renewAt: 2.0 / 3.0),
            CertificateReply(requestId: "req-1234", status: "issued"),
            CertificateReply(requestId: "", status: "weird \"status\"\n\u{1}/", chain: "é/\\", serial: "", notBefore: -1, notAfter: Int64.max,
                             issuedAt: Int64.min, renewAt: 0.5, retryAfter: 30),
            CertificateReply.failure("req-err", WireError(.badCSR, "CSR does not parse"), retryAfter: 5),
        ]
        var noVersion = samples[1]
        noVersion.v = nil
        samples.append(noVersion)
        for renewAt in [0.0, 1.0, 0.7, 0.9, 1e-7, 2.0 / 3.0, 0.1 + 0.2] {
            samples.append(CertificateReply(requestId: "r", status: "issued", renewAt: renewAt))
        }
        for reply in samples {
            let fast = WireCodec.encodeReply(reply)
            #expect(fast == WireCodec.encode(reply), "\(String(decoding: fast, as: UTF8.self))")
            #expect(try WireCodec.decode(CertificateReply.self, from: fast, limit: 1 << 20) == reply)
        }
    }
}

@Suite("CSR parsing without the key decoder")
struct KeylessCSRParsingTests {
    @Test("a CSR parsed through PEM and through DER (the ordinary parse) has the same DER, key bytes, CN and signature result")
    func sameAsOrdinary() throws {
        for index in 0..<20 {
            let key = try PrivateKey.generateP256()
            let made = try CertificateSigningRequest.make(commonName: "dev-\(index)", key: key)
            let viaPEM = try CertificateSigningRequest(pem: made.pem)
            let viaDER = try CertificateSigningRequest(der: made.der)
            #expect(viaPEM.der == viaDER.der)
            #expect(viaPEM.publicKey.spkiDER == viaDER.publicKey.spkiDER)
            #expect(viaPEM.commonName == "dev-\(index)")
            #expect(viaPEM.verifySignature() && viaDER.verifySignature())
            #expect(viaPEM.requestedExtensionCount == viaDER.requestedExtensionCount)
            #expect(viaPEM.attributeCount == viaDER.attributeCount)
        }
    }

    @Test("a tampered request (signature byte, subject) fails verification; a point off the curve does not parse; the old PEM label reads")
    func refusals() throws {
        let key = try PrivateKey.generateP256()
        let made = try CertificateSigningRequest.make(commonName: "dev-tamper", key: key)
        // Last byte of the signature.
        var der = made.der
        der[der.count - 1] ^= 0x01
        let badSignature = try CertificateSigningRequest(pem: pemArmour(der, "CERTIFICATE REQUEST"))
        #expect(!badSignature.verifySignature())
        // The CN's last letter ("r" of "tamper" → "s"): the signed bytes change.
        var renamed = made.der
        let cn = Array("dev-tamper".utf8)
        let at = try #require(renamed.indices.first { renamed[$0...].starts(with: cn) })
        renamed[at + cn.count - 1] = UInt8(ascii: "s")
        let forged = try CertificateSigningRequest(pem: pemArmour(renamed, "CERTIFICATE REQUEST"))
        #expect(forged.commonName == "dev-tampes")
        #expect(!forged.verifySignature())
        // The point's last byte changed: almost surely off the curve.
        var offCurve = made.der
        let spki = made.publicKey.spkiDER
        let start = try #require(offCurve.indices.first { offCurve[$0...].starts(with: spki) })
        offCurve[start + spki.count - 1] ^= 0x55
        #expect(throws: (any Error).self) { try CertificateSigningRequest(pem: pemArmour(offCurve, "CERTIFICATE REQUEST")) }
        #expect(throws: (any Error).self) { try CertificateSigningRequest(der: offCurve) }
        // "NEW CERTIFICATE REQUEST", as PEM_read_bio_X509_REQ accepts it.
        let old = try CertificateSigningRequest(pem: pemArmour(made.der, "NEW CERTIFICATE REQUEST"))
        #expect(old.verifySignature() && old.der == made.der)
        // A block of another kind before the request is skipped, as before.
        let both = key.publicKey.pem + made.pem
        #expect(try CertificateSigningRequest(pem: both).der == made.der)
        #expect(throws: (any Error).self) { try CertificateSigningRequest(pem: key.publicKey.pem) }
    }

    private func pemArmour(_ der: [UInt8], _ label: String) -> String { PEMArmour.encode(der, label: label) }
}

@Suite("CSR signatures checked on the legacy EC key")
struct LegacyECVerifyTests {
    /// Requests from the openssl CLI: each curve with each digest it may be
    /// signed with, and a SHA-512 one (not on the shortcut: OpenSSL checks it).
    @Test("for P-256 and P-384 requests signed with SHA-256, SHA-384 and SHA-512, and for every single-bit change in the signature and the signed bytes, the shortcut agrees with X509_REQ_verify_ex and with openssl req -verify")
    func agreesWithOpenSSL() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        for curve in ["P-256", "P-384"] {
            let keyFile = "\(curve).key"
            try #require(try CryptoTools.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:\(curve)", "-out", keyFile], in: dir).status == 0)
            for digest in ["sha256", "sha384", "sha512"] {
                let name = "\(curve)-\(digest)"
                let made = try CryptoTools.openssl(["req", "-new", "-key", keyFile, "-\(digest)", "-subj", "/CN=dev-\(name)", "-outform", "DER", "-out", "\(name).der"], in: dir)
                try #require(made.status == 0, "\(made.stderr)")
                let der = try dir.readBytes("\(name).der")
                let csr = try CertificateSigningRequest(der: der)
                let viaPEM = try CertificateSigningRequest(pem: PEMArmour.encode(der, label: "CERTIFICATE REQUEST"))
                #expect(viaPEM.keyIsLegacyCanonicalEC, "\(name): the shortcut is not taken")
                #expect(viaPEM.verifySignature(), "\(name)")
                #expect(csr.verifySignatureWithOpenSSL(), "\(name)")
                // Flip bits over the whole request; whatever still parses must get the same answer both ways.
                var checked = 0, refused = 0
                for index in stride(from: 4, to: der.count, by: 3) {
                    var changed = der
                    changed[index] ^= UInt8(1 << (index % 8))
                    guard let parsed = try? CertificateSigningRequest(pem: PEMArmour.encode(changed, label: "CERTIFICATE REQUEST")) else { continue }
                    checked += 1
                    let fast = parsed.verifySignature()
                    #expect(fast == parsed.verifySignatureWithOpenSSL(), "\(name): byte \(index)")
                    if !fast { refused += 1 }
                    if index % 30 == 1 {
                        // The independent check: the CLI on the same changed bytes.
                        try dir.write("changed.der", bytes: changed)
                        // OpenSSL 3.0's `req -verify` exits 0 either way: "verify OK", or "verify failure" or an error.
                        let cli = try CryptoTools.openssl(["req", "-in", "changed.der", "-inform", "DER", "-verify", "-noout"], in: dir)
                        let said = cli.stdout + cli.stderr
                        #expect(said.contains("verify OK") == fast, "\(name): byte \(index): openssl req -verify says \(said)")
                    }
                }
                #expect(checked > 20 && refused > 10, "\(name): \(checked) parsed, \(refused) refused")
            }
        }
    }

    @Test("the signed part of a request is found only in a well-formed DER SEQUENCE")
    func firstElement() throws {
        let key = try PrivateKey.generateP256()
        let made = try CertificateSigningRequest.make(commonName: "dev-seq", key: key)
        let signed = try #require(DERSequence.firstElement(of: made.der))
        #expect(signed.first == 0x30 && signed.count < made.der.count - 64)
        #expect(DERSequence.firstElement(of: []) == nil)
        #expect(DERSequence.firstElement(of: [0x30, 0x00]) == nil)
        #expect(DERSequence.firstElement(of: Array(made.der.prefix(made.der.count / 2))) == nil)
        #expect(DERSequence.firstElement(of: [0x30, 0x80, 0x30, 0x00, 0x00, 0x00]) == nil)  // indefinite length
        #expect(DERSequence.firstElement(of: [0x30, 0x81, 0x05, 0x30, 0x03, 1, 2, 3]) == nil)  // long form for a short length
        #expect(DERSequence.firstElement(of: [0x30, 0x04, 0x30, 0x05, 1, 2]) == nil)  // inner longer than outer
    }
}
