import Foundation
import Testing

import Shared

@Suite("Crypto: ES256 compact JWS, checked with PyJWT")
struct CryptoJWSTests {
    static let header = Array(#"{"alg":"ES256","typ":"JWT"}"#.utf8)
    static let payload = Array(#"{"sub":"gw-17","jti":"c-1","seq":42,"cmd":"rotate"}"#.utf8)

    @Test("a JWS we sign verifies with PyJWT")
    func swiftSignsPythonVerifies() throws {
        let key = try PrivateKey.generateP256()
        let token = try CompactJWS.signES256(headerJSON: Self.header, payloadJSON: Self.payload, key: key)
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try dir.write("pub.pem", key.publicKey.pem, mode: 0o644)
        let result = try CryptoTools.python([CryptoTools.pythonHelper, "verify", "pub.pem", token], in: dir)
        #expect(result.status == 0, "PyJWT: \(result.stderr)")
        #expect(result.stdout == String(decoding: Self.payload, as: UTF8.self))

        // PyJWT refuses it under another key.
        try dir.write("other.pem", try PrivateKey.generateP256().publicKey.pem, mode: 0o644)
        let wrongKey = try CryptoTools.python([CryptoTools.pythonHelper, "verify", "other.pem", token], in: dir)
        #expect(wrongKey.status == 1)

        let parsed = try CompactJWS(compact: token)
        #expect(parsed.signature.count == 64)
        #expect(parsed.headerJSON == Self.header && parsed.payloadJSON == Self.payload)
        #expect(parsed.verifyES256(with: key.publicKey))
    }

    @Test("a JWS PyJWT signs with our key verifies in Swift; tampering or another key fails")
    func pythonSignsSwiftVerifies() throws {
        let key = try PrivateKey.generateP256()
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let keyFile = try dir.write("key.pem", try key.pkcs8PEM(), mode: 0o600)
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let signed = try CryptoTools.python(
            [CryptoTools.pythonHelper, "sign", "key.pem", #"{"sub":"gw-17","seq":1}"#], in: dir)
        try #require(signed.status == 0, "PyJWT: \(signed.stderr)")
        let token = signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let jws = try CompactJWS(compact: token)
        #expect(jws.algorithm == "ES256")
        #expect(jws.verifyES256(with: key.publicKey))
        #expect(!jws.verifyES256(with: try PrivateKey.generateP256().publicKey))

        // Tampered payload, same signature.
        let parts = token.split(separator: ".").map(String.init)
        let forged = parts[0] + "." + Base64URL.encode(Array(#"{"sub":"gw-18","seq":1}"#.utf8)) + "." + parts[2]
        #expect(try !CompactJWS(compact: forged).verifyES256(with: key.publicKey))
    }

    @Test("signatures by another key, non-ES256 headers, DER signatures and non-P-256 keys are refused")
    func refusals() throws {
        let key = try PrivateKey.generateP256()
        let other = try PrivateKey.generateP256()
        let token = try CompactJWS.signES256(headerJSON: Self.header, payloadJSON: Self.payload, key: other)
        #expect(try !CompactJWS(compact: token).verifyES256(with: key.publicKey))
        #expect(try CompactJWS(compact: token).verifyES256(with: other.publicKey))

        // Header claiming another algorithm: never accepted by verifyES256.
        let hs = try CompactJWS.signES256(headerJSON: Array(#"{"alg":"HS256"}"#.utf8), payloadJSON: Self.payload, key: key)
        #expect(try !CompactJWS(compact: hs).verifyES256(with: key.publicKey))

        // A 64-byte signature with its halves swapped, and a wrongly sized one.
        let parts = try CompactJWS.signES256(headerJSON: Self.header, payloadJSON: Self.payload, key: key)
            .split(separator: ".").map(String.init)
        let signature = try #require(Base64URL.decode(parts[2]))
        let swapped = Array(signature[32...] + signature[..<32])
        #expect(try !CompactJWS(compact: parts[0] + "." + parts[1] + "." + Base64URL.encode(swapped)).verifyES256(with: key.publicKey))
        #expect(try !CompactJWS(compact: parts[0] + "." + parts[1] + "." + Base64URL.encode(signature + [0])).verifyES256(with: key.publicKey))

        // ES256 needs P-256 on both sides.
        let dir = try CryptoTempDir()
        defer { dir.remove() }
        let made = try CryptoTools.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "p384.pem"], in: dir)
        try #require(made.status == 0)
        let p384 = try PrivateKey(pem: try dir.read("p384.pem"))
        #expect(throws: CryptoError.self) { try CompactJWS.signES256(headerJSON: Self.header, payloadJSON: Self.payload, key: p384) }
        #expect(try !CompactJWS(compact: parts.joined(separator: ".")).verifyES256(with: p384.publicKey))
    }

    @Test("malformed compact strings throw: 2 or 4 parts, bad base64url, padding, bad header, 20 KB")
    func malformed() throws {
        let key = try PrivateKey.generateP256()
        let token = try CompactJWS.signES256(headerJSON: Self.header, payloadJSON: Self.payload, key: key)
        let parts = token.split(separator: ".").map(String.init)
        let cases: [String] = [
            parts[0] + "." + parts[1],
            token + ".x",
            "",
            "..",
            parts[0] + "." + parts[1] + ".",
            parts[0] + "+." + parts[1] + "." + parts[2],
            parts[0] + "." + parts[1] + "." + parts[2] + "=",
            parts[0] + "." + parts[1] + ". " + parts[2],
            Base64URL.encode(Array("not json".utf8)) + "." + parts[1] + "." + parts[2],
            Base64URL.encode(Array(#"{"typ":"JWT"}"#.utf8)) + "." + parts[1] + "." + parts[2],
            Base64URL.encode(Array(#"{"alg":"ES256","crit":["exp"]}"#.utf8)) + "." + parts[1] + "." + parts[2],
        ]
        for compact in cases {
            let error = try #require(throws: CryptoError.self, "\(compact)") { try CompactJWS(compact: compact) }
            #expect(error.code == "bad_jws", "\(compact)")
        }
        let huge = parts[0] + "." + Base64URL.encode(Array(repeating: UInt8(ascii: "a"), count: 20_000)) + "." + parts[2]
        let tooLarge = try #require(throws: CryptoError.self) { try CompactJWS(compact: huge) }
        #expect(tooLarge.code == "too_large")
        #expect(throws: Never.self) { try CompactJWS(compact: huge, maxLength: 40_000) }
    }
}
