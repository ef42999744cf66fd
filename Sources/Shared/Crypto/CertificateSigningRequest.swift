#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// A PKCS#10 certificate signing request.
package final class CertificateSigningRequest: @unchecked Sendable {
    // @unchecked Sendable: `request` is set once in init and never mutated
    // (only read through const OpenSSL getters); freed in deinit.
    let request: OpaquePointer
    package let der: [UInt8]
    package let publicKey: PublicKey

    /// Takes ownership of `request` (freed if init throws).
    init(owning request: OpaquePointer) throws {
        (self.request, self.der, self.publicKey) = try CertificateSigningRequest.parts(owning: request)
    }

    /// `request` with its DER and key, read back from OpenSSL's decoded key
    /// (re-encoded for its SPKI bytes). Frees `request` if it throws.
    private static func parts(owning request: OpaquePointer) throws -> (OpaquePointer, [UInt8], PublicKey) {
        guard let der = encodeDER({ i2d_X509_REQ(request, $0) }),
            let pkey = X509_REQ_get0_pubkey(request)
        else {
            X509_REQ_free(request)
            throw CryptoError.openSSL("bad_csr", "CSR has no usable public key")
        }
        do {
            // For a canonical P-256/P-384 key the SPKI as the request carries
            // it is what OpenSSL would encode again: no OSSL_ENCODER needed.
            let spki = X509_REQ_get_X509_PUBKEY(request).flatMap { x in encodeDER({ i2d_X509_PUBKEY(x, $0) }) }
            let key = try spki.flatMap { PublicKey(borrowing: pkey, canonicalSPKI: $0) } ?? PublicKey(borrowing: pkey)
            return (request, der, key)
        } catch {
            X509_REQ_free(request)
            throw CryptoError(code: "bad_csr", message: "CSR public key unreadable: \(error)")
        }
    }

    /// Parses DER `bytes` (a PEM body; trailing bytes are ignored, as
    /// `PEM_read_bio_X509_REQ` ignores them). A canonical P-256/P-384 key
    /// (`CanonicalSPKI`) is made directly from its point — no OSSL_DECODER —
    /// after a parse that leaves keys undecoded (`KeylessParsing`); anything
    /// else is parsed again the ordinary way, the key decoded and re-encoded by OpenSSL.
    private static func parts(parsing bytes: UnsafeBufferPointer<UInt8>) throws -> (OpaquePointer, [UInt8], PublicKey) {
        if let context = KeylessParsing.context, let base = bytes.baseAddress {
            var cursor: UnsafePointer<UInt8>? = base
            if let request = lanyard_d2i_X509_REQ_in(context, &cursor, bytes.count) {
                if let der = encodeDER({ i2d_X509_REQ(request, $0) }),
                    let spki = X509_REQ_get_X509_PUBKEY(request).flatMap({ x in encodeDER({ i2d_X509_PUBKEY(x, $0) }) }),
                    let key = PublicKey(canonicalSPKI: spki) {
                    CryptoError.clearOpenSSLErrors()
                    return (request, der, key)
                }
                X509_REQ_free(request)
            }
            CryptoError.clearOpenSSLErrors()
        }
        var cursor = bytes.baseAddress
        guard let request = d2i_X509_REQ(nil, &cursor, bytes.count) else {
            throw CryptoError.openSSL("bad_csr", "no CERTIFICATE REQUEST in PEM")
        }
        return try parts(owning: request)
    }

    deinit { X509_REQ_free(request) }

    /// A SHA-256 signed CSR whose subject is only `CN=commonName`, with no attributes or extensions.
    package static func make(commonName: String, key: PrivateKey) throws -> CertificateSigningRequest {
        guard let request = X509_REQ_new() else { throw CryptoError.openSSL("bad_csr", "cannot allocate CSR") }
        var owned = true
        defer { if owned { X509_REQ_free(request) } }
        let name = try makeName(commonName: commonName, organization: nil)
        defer { X509_NAME_free(name) }
        guard X509_REQ_set_version(request, 0) == 1,
            X509_REQ_set_subject_name(request, name) == 1,
            X509_REQ_set_pubkey(request, key.pkey) == 1
        else { throw CryptoError.openSSL("bad_csr", "cannot fill CSR") }
        guard X509_REQ_sign(request, key.pkey, digest(for: key.pkey)) > 0 else {
            throw CryptoError.openSSL("signing_failed", "cannot sign CSR")
        }
        owned = false
        return try CertificateSigningRequest(owning: request)
    }

    /// The first "CERTIFICATE REQUEST" (or "NEW CERTIFICATE REQUEST") block in
    /// `pem`, found by the PEM reader `PEM_read_bio_X509_REQ` uses, then parsed
    /// as `parts(parsing:)` says.
    package init(pem: String) throws {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "CSR PEM")
        (request, der, publicKey) = try withReadBIO(bytes, code: "bad_csr") { bio in
            var data: UnsafeMutablePointer<UInt8>? = nil
            var length = 0
            guard PEM_bytes_read_bio(&data, &length, nil, PEM_STRING_X509_REQ, bio, nil, nil) == 1, let data else {
                throw CryptoError.openSSL("bad_csr", "no CERTIFICATE REQUEST in PEM")
            }
            defer { lanyard_OPENSSL_free(data) }
            return try CertificateSigningRequest.parts(parsing: UnsafeBufferPointer(start: data, count: length))
        }
    }

    package convenience init(der: [UInt8]) throws {
        try checkInputSize(der.count, "CSR DER")
        guard let request = decodeDER(der, { d2i_X509_REQ(nil, $0, $1) }, free: { X509_REQ_free($0) }) else {
            throw CryptoError.openSSL("bad_csr", "not a DER CSR")
        }
        try self.init(owning: request)
    }

    package var pem: String { pemEncode(der, label: "CERTIFICATE REQUEST") }

    package var commonName: String? { firstCommonName(in: X509_REQ_get_subject_name(request)) }

    /// Number of extensions in the extensionRequest attribute (0 if none).
    package var requestedExtensionCount: Int {
        guard let extensions = X509_REQ_get_extensions(request) else {
            CryptoError.clearOpenSSLErrors()
            return 0
        }
        defer { lanyard_sk_X509_EXTENSION_pop_free(extensions) }
        return Int(lanyard_sk_X509_EXTENSION_num(extensions))
    }

    /// Number of attributes of any kind (extensionRequest, challengePassword, ...).
    package var attributeCount: Int { Int(X509_REQ_get_attr_count(request)) }

    /// Whether the CSR's self-signature verifies with its own public key.
    package func verifySignature() -> Bool {
        // A canonical P-256/P-384 key made from the request's own bytes (`parts(parsing:)`):
        // ECDSA_verify on it directly, without OpenSSL 3 exporting it to a provider first.
        if publicKey.isLegacyCanonicalEC, let signed = DERSequence.firstElement(of: der) {
            let result = signed.withUnsafeBufferPointer {
                lanyard_X509_REQ_verify_legacy_ec(request, publicKey.pkey, $0.baseAddress, $0.count, FetchedDigest.sha256, FetchedDigest.sha384)
            }
            if result >= 0 {
                if result != 1 { CryptoError.clearOpenSSLErrors() }
                return result == 1
            }
        }
        return verifySignatureWithOpenSSL()
    }

    /// Whether `verifySignature` may take the legacy-key shortcut (a canonical P-256/P-384 key read from PEM).
    package var keyIsLegacyCanonicalEC: Bool { publicKey.isLegacyCanonicalEC }

    /// X509_REQ_verify_ex: every kind of key and signature algorithm. In the
    /// default library context, whichever context parsed the request (`parse`).
    package func verifySignatureWithOpenSSL() -> Bool {
        let result = X509_REQ_verify_ex(request, publicKey.pkey, nil, nil)
        if result != 1 { CryptoError.clearOpenSSLErrors() }
        return result == 1
    }
}

/// The first element of a DER SEQUENCE, as its bytes: for a CSR, the
/// CertificationRequestInfo its signature covers. nil for anything that is not
/// a definite-length SEQUENCE holding a complete first element.
package enum DERSequence {
    package static func firstElement(of der: [UInt8]) -> ArraySlice<UInt8>? {
        guard let outer = header(der, at: 0), der[0] == 0x30, outer.contentStart + outer.length <= der.count,
            outer.length > 0, let inner = header(der, at: outer.contentStart)
        else { return nil }
        let end = inner.contentStart + inner.length
        guard end <= outer.contentStart + outer.length else { return nil }
        return der[outer.contentStart..<end]
    }

    /// The content's offset and length of the element starting at `offset` (one-byte tags only).
    private static func header(_ der: [UInt8], at offset: Int) -> (contentStart: Int, length: Int)? {
        guard offset + 2 <= der.count, der[offset] & 0x1F != 0x1F else { return nil }
        let first = Int(der[offset + 1])
        if first < 0x80 { return (offset + 2, first) }
        let count = first & 0x7F
        guard (1...4).contains(count), offset + 2 + count <= der.count, der[offset + 2] != 0 else { return nil }
        var length = 0
        for byte in der[(offset + 2)..<(offset + 2 + count)] { length = length << 8 | Int(byte) }
        guard length >= 0x80 else { return nil }
        return (offset + 2 + count, length)
    }
}

/// The library context `CertificateSigningRequest.parse` reads requests in:
/// only the "null" provider, so a request's key is left undecoded (shim.h).
/// Made once per process, never freed; nil if OpenSSL cannot make it (then
/// every request is parsed the ordinary way).
enum KeylessParsing {
    nonisolated(unsafe) static let context: OpaquePointer? = lanyard_keyless_libctx()
}

/// SHA-256 for EC/RSA; nil (built-in hash) for Ed25519/Ed448.
func digest(for pkey: OpaquePointer) -> OpaquePointer? {
    switch EVP_PKEY_get_base_id(pkey) {
    case EVP_PKEY_ED25519, EVP_PKEY_ED448: return nil
    default: return FetchedDigest.sha256
    }
}

/// Message digests fetched from the default provider once per process.
/// `EVP_sha256()` is a legacy handle that OpenSSL 3 resolves by name (an
/// `EVP_MD_fetch`: a locked, string-compared lookup) on every signature and
/// digest; a fetched `EVP_MD` skips that. They are never freed (process
/// lifetime) and are immutable, hence safe to share between threads.
enum FetchedDigest {
    nonisolated(unsafe) static let sha256: OpaquePointer = fetch("SHA256")
    nonisolated(unsafe) static let sha384: OpaquePointer = fetch("SHA384")
    nonisolated(unsafe) static let sha1: OpaquePointer = fetch("SHA1")

    private static func fetch(_ name: String) -> OpaquePointer {
        guard let md = EVP_MD_fetch(nil, name, nil) else {
            fatalError("\(name) unavailable: \(CryptoError.drainOpenSSLErrors())")
        }
        return md
    }
}
