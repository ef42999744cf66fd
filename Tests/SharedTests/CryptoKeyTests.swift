import Foundation
import Testing

import Shared

@Suite("Crypto: keys, digests and encodings")
struct CryptoKeyTests {
    @Test("a private key survives a PKCS#8 PEM round trip, and SEC1 PEM from openssl reads too")
    func privateKeyRoundTrip() throws {
        let key = try PrivateKey.generateP256()
        let pem = try key.pkcs8PEM()
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let again = try PrivateKey(pem: pem)
        #expect(again.publicKey == key.publicKey)
        #expect(try again.pkcs8PEM() == pem)
        #expect(key.publicKey.algorithm == .p256)
        #expect(key.publicKey.algorithm.name == "P-256")

        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("key.pem", pem)
        let sec1 = try CryptoTools.openssl(["ec", "-in", "key.pem", "-out", "sec1.pem"], in: dir)
        try #require(sec1.status == 0, "\(sec1.stderr)")
        let sec1PEM = try dir.read("sec1.pem")
        #expect(sec1PEM.contains("BEGIN EC PRIVATE KEY"))
        #expect(try PrivateKey(pem: sec1PEM).publicKey == key.publicKey)

        // Encrypted keys are refused without prompting for a passphrase.
        let encrypted = try CryptoTools.openssl(
            ["pkcs8", "-topk8", "-in", "key.pem", "-out", "enc.pem", "-passout", "pass:secret"], in: dir)
        try #require(encrypted.status == 0, "\(encrypted.stderr)")
        let error = try #require(throws: CryptoError.self) { try PrivateKey(pem: try dir.read("enc.pem")) }
        #expect(error.code == "bad_pem")
        #expect(throws: CryptoError.self) { try PrivateKey(pem: key.publicKey.pem) }
        let big = try #require(throws: CryptoError.self) { try PrivateKey(pem: String(repeating: "k", count: 65_537)) }
        #expect(big.code == "too_large")
    }

    @Test("PublicKey fingerprint equals `openssl pkey -pubin -outform DER | sha256sum`; PEM and DER round-trip")
    func fingerprintMatchesOpenSSL() throws {
        let key = try PrivateKey.generateP256()
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("pub.pem", key.publicKey.pem, mode: 0o644)
        let der = try CryptoTools.openssl(["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER", "-out", "pub.der"], in: dir)
        try #require(der.status == 0, "\(der.stderr)")
        let sum = try CryptoTools.run("/usr/bin/sha256sum", ["pub.der"], in: dir)
        try #require(sum.status == 0)
        let expected = String(sum.stdout.prefix(64))
        #expect(key.publicKey.fingerprint == expected)
        let opensslDER = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path("pub.der"))))
        #expect(key.publicKey.spkiDER == opensslDER)
        #expect(try PublicKey(spkiDER: opensslDER) == key.publicKey)
        #expect(try PublicKey(pem: key.publicKey.pem) == key.publicKey)
        #expect(try PrivateKey.generateP256().publicKey != key.publicKey)
        let bad = try #require(throws: CryptoError.self) { try PublicKey(spkiDER: opensslDER + [0]) }
        #expect(bad.code == "bad_der")
    }

    @Test("algorithms of keys made by openssl are named P-384, Ed25519, RSA-2048")
    func algorithmNames() throws {
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let cases: [([String], KeyAlgorithm, String)] = [
            (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], .p384, "P-384"),
            (["-algorithm", "ED25519"], .ed25519, "Ed25519"),
            (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], .rsa(bits: 2048), "RSA-2048"),
        ]
        for (index, (args, algorithm, name)) in cases.enumerated() {
            let made = try CryptoTools.openssl(["genpkey"] + args + ["-out", "k\(index).pem"], in: dir)
            try #require(made.status == 0, "\(made.stderr)")
            let key = try PrivateKey(pem: try dir.read("k\(index).pem"))
            #expect(key.publicKey.algorithm == algorithm)
            #expect(key.publicKey.algorithm.name == name)
        }
    }

    @Test("SHA-256 and hex match known vectors; SecureRandom gives fresh bytes")
    func digestAndRandom() {
        #expect(Digest.hex(Digest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.hex(Digest.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.hex([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(SecureRandom.bytes(32).count == 32)
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
        #expect(SecureRandom.bytes(0).isEmpty)
    }

    @Test("Base64URL round-trips, has no padding, and decoding is strict")
    func base64URL() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 250) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text) == bytes)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.encode(Array("{\"alg\":\"ES256\"}".utf8)) == "eyJhbGciOiJFUzI1NiJ9")
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("-_8=") == nil)  // padding
        #expect(Base64URL.decode("+/8") == nil)  // standard alphabet
        #expect(Base64URL.decode("ab cd") == nil)
        #expect(Base64URL.decode("a") == nil)  // impossible length
        #expect(Base64URL.decode("-_9") == nil)  // non-zero trailing bits
        #expect(Base64URL.decode("éé") == nil)
    }

    @Test("CryptoError carries a stable code, a message and OpenSSL's queue")
    func errorShape() {
        let error = #expect(throws: CryptoError.self) { try PublicKey(pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") }
        #expect(error?.code == "bad_pem")
        #expect(error?.openSSLErrors.isEmpty == false)
        #expect(error?.description.hasPrefix("bad_pem: ") == true)
    }
}
