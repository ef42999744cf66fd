#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// A JWS in compact serialization (RFC 7515 §7.1), ES256 only (RFC 7518 §3.4:
/// the signature is the raw 32-byte r followed by the 32-byte s, not DER).
package struct CompactJWS: Sendable {
    package let headerJSON: [UInt8]
    package let payloadJSON: [UInt8]
    /// ASCII(BASE64URL(header) || '.' || BASE64URL(payload)), what the signature covers.
    package let signingInput: [UInt8]
    package let signature: [UInt8]
    /// The protected header's "alg".
    package let algorithm: String

    private struct Header: Decodable {
        let alg: String
        let crit: [String]?
    }

    /// Parses without verifying. Throws "too_large" above `maxLength` bytes and "bad_jws" unless
    /// there are exactly three strict base64url parts and the header is a JSON object with "alg".
    package init(compact: String, maxLength: Int = 16384) throws {
        let bytes = Array(compact.utf8)
        guard bytes.count <= maxLength else {
            throw CryptoError(code: "too_large", message: "JWS is \(bytes.count) bytes; the limit is \(maxLength)")
        }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw CryptoError(code: "bad_jws", message: "JWS compact serialization needs exactly 3 parts, got \(parts.count)")
        }
        guard !parts[0].isEmpty, !parts[2].isEmpty,
            let header = Base64.decode(Array(parts[0]), alphabet: Base64.urlAlphabet),
            let payload = Base64.decode(Array(parts[1]), alphabet: Base64.urlAlphabet),
            let signature = Base64.decode(Array(parts[2]), alphabet: Base64.urlAlphabet)
        else { throw CryptoError(code: "bad_jws", message: "JWS part is empty or not strict base64url") }
        guard let decoded = try? JSONDecoder().decode(Header.self, from: Data(header)) else {
            throw CryptoError(code: "bad_jws", message: "JWS header is not a JSON object with a string \"alg\"")
        }
        guard decoded.crit == nil else {
            throw CryptoError(code: "bad_jws", message: "JWS header \"crit\" is not supported")
        }
        self.headerJSON = header
        self.payloadJSON = payload
        self.signingInput = Array(parts[0]) + [UInt8(ascii: ".")] + Array(parts[1])
        self.signature = signature
        self.algorithm = decoded.alg
    }

    /// True only if the header says ES256, `key` is P-256, the signature is 64 bytes, and it verifies.
    package func verifyES256(with key: PublicKey) -> Bool {
        guard algorithm == "ES256", key.algorithm == .p256, signature.count == 64 else { return false }
        defer { CryptoError.clearOpenSSLErrors() }
        guard let der = ECDSASignature.der(fromRaw: signature) else { return false }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, FetchedDigest.sha256, nil, key.pkey) == 1 else { return false }
        return EVP_DigestVerify(context, der, der.count, signingInput, signingInput.count) == 1
    }

    /// Signs `headerJSON` (which should say `"alg":"ES256"`) and `payloadJSON` with a P-256 key.
    package static func signES256(headerJSON: [UInt8], payloadJSON: [UInt8], key: PrivateKey) throws -> String {
        guard key.algorithm == .p256 else {
            throw CryptoError(code: "signing_failed", message: "ES256 needs a P-256 key, not \(key.algorithm.name)")
        }
        let input = Base64URL.encode(headerJSON) + "." + Base64URL.encode(payloadJSON)
        let inputBytes = Array(input.utf8)
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, FetchedDigest.sha256, nil, key.pkey) == 1 else {
            throw CryptoError.openSSL("signing_failed", "cannot initialise ES256 signing")
        }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, inputBytes, inputBytes.count) == 1 else {
            throw CryptoError.openSSL("signing_failed", "cannot size signature")
        }
        var der = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &der, &length, inputBytes, inputBytes.count) == 1 else {
            throw CryptoError.openSSL("signing_failed", "ES256 signing failed")
        }
        guard let raw = ECDSASignature.raw(fromDER: Array(der.prefix(length))) else {
            throw CryptoError.openSSL("signing_failed", "cannot convert ECDSA signature")
        }
        return input + "." + Base64URL.encode(raw)
    }
}

/// ECDSA P-256 signature format conversion: DER ECDSA-Sig-Value <-> raw r||s (32 bytes each).
enum ECDSASignature {
    static func raw(fromDER der: [UInt8]) -> [UInt8]? {
        let signature: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let signature else { return nil }
        defer { ECDSA_SIG_free(signature) }
        guard let r = ECDSA_SIG_get0_r(signature), let s = ECDSA_SIG_get0_s(signature) else { return nil }
        var out = [UInt8](repeating: 0, count: 64)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(r, buffer.baseAddress, 32) == 32 && BN_bn2binpad(s, buffer.baseAddress! + 32, 32) == 32
        }
        return ok ? out : nil
    }

    static func der(fromRaw raw: [UInt8]) -> [UInt8]? {
        guard raw.count == 64, let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        guard let r = BN_bin2bn(raw, 32, nil) else { return nil }
        guard let s = Array(raw[32...]).withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, 32, nil) }) else {
            BN_free(r)
            return nil
        }
        guard ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        return encodeDER { i2d_ECDSA_SIG(signature, $0) }
    }
}
