#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL
import Synchronization

/// The algorithm of a public or private key.
package enum KeyAlgorithm: Sendable, Equatable {
    case p256
    case p384
    case ed25519
    case rsa(bits: Int)
    case other(String)

    /// "P-256", "P-384", "Ed25519", "RSA-2048", or OpenSSL's short name.
    package var name: String {
        switch self {
        case .p256: return "P-256"
        case .p384: return "P-384"
        case .ed25519: return "Ed25519"
        case .rsa(let bits): return "RSA-\(bits)"
        case .other(let name): return name
        }
    }

    static func of(_ pkey: OpaquePointer) -> KeyAlgorithm {
        let id = EVP_PKEY_get_base_id(pkey)
        switch id {
        case EVP_PKEY_EC:
            var buffer = [CChar](repeating: 0, count: 80)
            var length = 0
            guard EVP_PKEY_get_group_name(pkey, &buffer, buffer.count, &length) == 1 else {
                CryptoError.clearOpenSSLErrors()
                return .other("EC")
            }
            let group = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var nid = OBJ_sn2nid(group)
            if nid == NID_undef { nid = EC_curve_nist2nid(group) }
            switch nid {
            case NID_X9_62_prime256v1: return .p256
            case NID_secp384r1: return .p384
            default: return .other("EC-\(group)")
            }
        case EVP_PKEY_ED25519:
            return .ed25519
        case EVP_PKEY_RSA:
            return .rsa(bits: Int(EVP_PKEY_get_bits(pkey)))
        default:
            if let name = OBJ_nid2sn(id) { return .other(String(cString: name)) }
            return .other("unknown")
        }
    }
}

/// A private key. Its PEM is never logged; `description` is deliberately not provided.
package final class PrivateKey: @unchecked Sendable {
    // @unchecked Sendable: `pkey` is set once in init, never mutated, and only
    // used by OpenSSL calls that take it as a const/refcounted input; freed in deinit.
    let pkey: OpaquePointer
    package let publicKey: PublicKey
    /// The last issuer certificate this key was checked against with
    /// `X509_check_private_key` (CertificateIssuer, CRL signing): both are
    /// immutable, so the answer holds for the pair's lifetime and the check
    /// need not be repeated for every certificate signed.
    let matchedCertificate = Mutex<Certificate?>(nil)

    /// Takes ownership of `pkey` (freed if init throws).
    init(owning pkey: OpaquePointer) throws {
        // P-256/P-384: the public half built from the key's point, without
        // OpenSSL 3's encoder and decoder (a third of a simulated device's
        // CPU per renewal went there: docs/benchmarks.md §12).
        if let publicKey = PrivateKey.canonicalPublicKey(of: pkey) {
            self.publicKey = publicKey
            self.pkey = pkey
            return
        }
        guard let der = encodeDER({ i2d_PUBKEY(pkey, $0) }) else {
            EVP_PKEY_free(pkey)
            throw CryptoError.openSSL("bad_key", "cannot derive public key")
        }
        do {
            self.publicKey = try PublicKey(spkiDER: der)
        } catch {
            EVP_PKEY_free(pkey)
            throw error
        }
        self.pkey = pkey
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The public key of a P-256 or P-384 `pkey`, made from its uncompressed
    /// point as `PublicKey(canonicalSPKI:)` makes it (which re-encodes it and
    /// keeps it only if the bytes agree); nil for anything else.
    private static func canonicalPublicKey(of pkey: OpaquePointer) -> PublicKey? {
        guard EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC else { return nil }
        let prefix: [UInt8]
        switch KeyAlgorithm.of(pkey) {
        case .p256: prefix = CanonicalSPKI.p256Prefix
        case .p384: prefix = CanonicalSPKI.p384Prefix
        default: return nil
        }
        // The prefix ends with the point's 0x04; the parameter starts with it.
        var spki = [UInt8](prefix.dropLast())
        let start = spki.count
        spki.append(contentsOf: repeatElement(0, count: 97))
        var length = 0
        let read = spki.withUnsafeMutableBufferPointer { buffer in
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buffer.baseAddress! + start, 97, &length)
        }
        guard read == 1 else {
            CryptoError.clearOpenSSLErrors()
            return nil
        }
        spki.removeLast(97 - length)
        return PublicKey(canonicalSPKI: spki)
    }

    /// A new NIST P-256 key.
    package static func generateP256() throws -> PrivateKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw CryptoError.openSSL("key_generation_failed", "cannot create EC key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1,
            EVP_PKEY_CTX_set_group_name(context, "P-256") == 1
        else { throw CryptoError.openSSL("key_generation_failed", "cannot configure P-256 key generation") }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_generate(context, &pkey) == 1, let pkey else {
            throw CryptoError.openSSL("key_generation_failed", "P-256 key generation failed")
        }
        return try PrivateKey(owning: pkey)
    }

    /// Reads an unencrypted PKCS#8 ("PRIVATE KEY") or traditional ("EC PRIVATE KEY", ...) PEM.
    /// Encrypted keys are refused; OpenSSL is never allowed to prompt for a passphrase.
    package convenience init(pem: String) throws {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "private key PEM")
        guard !pem.contains("ENCRYPTED") else {
            throw CryptoError(code: "bad_pem", message: "encrypted private keys are not supported")
        }
        let pkey = try withReadBIO(bytes, code: "bad_pem") { bio -> OpaquePointer in
            let refusePassphrase: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in -1 }
            guard let pkey = PEM_read_bio_PrivateKey(bio, nil, refusePassphrase, nil) else {
                throw CryptoError.openSSL("bad_pem", "no readable private key in PEM")
            }
            return pkey
        }
        try self.init(owning: pkey)
    }

    /// Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). Handle as a secret.
    package func pkcs8PEM() throws -> String {
        let bytes = try writeToBIO(code: "encoding_failed", secure: true) { bio in
            PEM_write_bio_PKCS8PrivateKey(bio, pkey, nil, nil, 0, nil, nil)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The key's algorithm (same as `publicKey.algorithm`).
    package var algorithm: KeyAlgorithm { publicKey.algorithm }

    /// Whether this is the private key of `certificate` (`X509_check_private_key`),
    /// remembered for the last certificate that matched.
    func matches(_ certificate: Certificate) -> Bool {
        if matchedCertificate.withLock({ $0 === certificate }) { return true }
        guard X509_check_private_key(certificate.x509, pkey) == 1 else { return false }
        matchedCertificate.withLock { $0 = certificate }
        return true
    }
}

/// A public key, identified by its SubjectPublicKeyInfo DER.
package final class PublicKey: @unchecked Sendable, Equatable, Hashable, CustomStringConvertible {
    // @unchecked Sendable: `pkey` and the cached encodings are set once in init
    // and never mutated; `pkey` is only read by OpenSSL; freed in deinit.
    let pkey: OpaquePointer
    package let spkiDER: [UInt8]
    package let algorithm: KeyAlgorithm
    /// `pkey` is a legacy EC key that OpenSSL encodes to exactly `spkiDER`
    /// (`init?(canonicalSPKI:)`): `X509_set_pubkey` takes it without OpenSSL 3's
    /// encoder/decoder round trip (CertificateIssuer.setPublicKey).
    let isLegacyCanonicalEC: Bool

    package convenience init(pem: String) throws {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "public key PEM")
        let pkey = try withReadBIO(bytes, code: "bad_pem") { bio -> OpaquePointer in
            guard let pkey = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else {
                throw CryptoError.openSSL("bad_pem", "no SubjectPublicKeyInfo in PEM")
            }
            return pkey
        }
        try self.init(owning: pkey)
    }

    package convenience init(spkiDER: [UInt8]) throws {
        try checkInputSize(spkiDER.count, "public key DER")
        guard let pkey = decodeDER(spkiDER, { d2i_PUBKEY(nil, $0, $1) }, free: { EVP_PKEY_free($0) }) else {
            throw CryptoError.openSSL("bad_der", "not a SubjectPublicKeyInfo")
        }
        try self.init(owning: pkey)
    }

    /// Takes ownership of `pkey` (freed if init throws).
    init(owning pkey: OpaquePointer) throws {
        guard let der = encodeDER({ i2d_PUBKEY(pkey, $0) }) else {
            EVP_PKEY_free(pkey)
            throw CryptoError.openSSL("bad_key", "cannot encode public key")
        }
        self.pkey = pkey
        self.spkiDER = der
        self.algorithm = KeyAlgorithm.of(pkey)
        self.isLegacyCanonicalEC = false
    }

    /// A new wrapper sharing (up-ref'ing) an EVP_PKEY owned elsewhere.
    convenience init(borrowing pkey: OpaquePointer) throws {
        guard EVP_PKEY_up_ref(pkey) == 1 else { throw CryptoError.openSSL("bad_key", "cannot reference key") }
        try self.init(owning: pkey)
    }

    /// A wrapper sharing (up-ref'ing) `pkey`, decoded by OpenSSL from
    /// `spkiDER`, when those bytes are a canonical P-256 or P-384 key (named
    /// curve, uncompressed point: `CanonicalSPKI`). Such bytes are exactly
    /// what `i2d_PUBKEY` would encode again from `pkey` (tested against it and
    /// against `openssl pkey -pubin -outform DER`), so the fingerprint is the
    /// same, without OpenSSL 3's encoder lookup. Any other key: nil (use
    /// `init(borrowing:)`, which re-encodes).
    convenience init?(borrowing pkey: OpaquePointer, canonicalSPKI spkiDER: [UInt8]) {
        guard let algorithm = CanonicalSPKI.algorithm(of: spkiDER), EVP_PKEY_up_ref(pkey) == 1 else { return nil }
        self.init(adopting: pkey, spkiDER: spkiDER, algorithm: algorithm, legacy: false)
    }

    /// A key made directly from canonical P-256/P-384 SPKI bytes (a legacy EC
    /// key on the shared curve group, its point checked to be on the curve),
    /// kept only if OpenSSL encodes it back to exactly `spkiDER`. nil for any
    /// other bytes. No OSSL_DECODER or OSSL_ENCODER involved.
    convenience init?(canonicalSPKI spkiDER: [UInt8]) {
        guard let algorithm = CanonicalSPKI.algorithm(of: spkiDER), let point = CanonicalSPKI.point(of: spkiDER, algorithm),
            let group = algorithm == .p256 ? CurveGroup.p256 : CurveGroup.p384
        else { return nil }
        guard let pkey = point.withUnsafeBufferPointer({ lanyard_legacy_ec_public_key_on(group, $0.baseAddress, $0.count) }) else {
            CryptoError.clearOpenSSLErrors()
            return nil
        }
        guard encodeDER({ i2d_PUBKEY(pkey, $0) }) == spkiDER else {
            EVP_PKEY_free(pkey)
            return nil
        }
        self.init(adopting: pkey, spkiDER: spkiDER, algorithm: algorithm, legacy: true)
    }

    private init(adopting pkey: OpaquePointer, spkiDER: [UInt8], algorithm: KeyAlgorithm, legacy: Bool) {
        self.pkey = pkey
        self.spkiDER = spkiDER
        self.algorithm = algorithm
        self.isLegacyCanonicalEC = legacy
    }

    deinit { EVP_PKEY_free(pkey) }

    /// "-----BEGIN PUBLIC KEY-----" PEM.
    package var pem: String { pemEncode(spkiDER, label: "PUBLIC KEY") }

    /// Lowercase hex SHA-256 of the SPKI DER.
    package var fingerprint: String { Digest.hex(Digest.sha256(spkiDER)) }

    package var description: String { "\(algorithm.name) key sha256:\(fingerprint)" }

    package static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.spkiDER == rhs.spkiDER }
    package func hash(into hasher: inout Hasher) { hasher.combine(spkiDER) }
}

/// SubjectPublicKeyInfo DER of the keys a device normally sends, in the one
/// encoding DER allows for them: id-ecPublicKey with the named curve
/// (P-256 or P-384) and the uncompressed point. For these bytes the SPKI in a
/// CSR is the SPKI OpenSSL would encode from the key, byte for byte; anything
/// else (compressed points, explicit curve parameters, RSA, Ed25519) is not
/// recognised here and goes through OpenSSL's encoder as before.
enum CanonicalSPKI {
    /// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) 0x04 … }
    static let p256Prefix: [UInt8] = [0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                      0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04]
    /// SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (0 unused bits) 0x04 … }
    static let p384Prefix: [UInt8] = [0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                      0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04]

    static func algorithm(of der: [UInt8]) -> KeyAlgorithm? {
        if der.count == p256Prefix.count + 64, der.starts(with: p256Prefix) { return .p256 }
        if der.count == p384Prefix.count + 96, der.starts(with: p384Prefix) { return .p384 }
        return nil
    }

    /// The encoded (uncompressed) point of a canonical key: 0x04 || X || Y.
    static func point(of der: [UInt8], _ algorithm: KeyAlgorithm) -> ArraySlice<UInt8>? {
        switch algorithm {
        case .p256 where der.count == p256Prefix.count + 64: return der[(p256Prefix.count - 1)...]
        case .p384 where der.count == p384Prefix.count + 96: return der[(p384Prefix.count - 1)...]
        default: return nil
        }
    }
}

/// PEM armour, for tests of the encoder.
package enum PEMArmour {
    package static func encode(_ der: [UInt8], label: String) -> String { pemEncode(der, label: label) }
}

/// PEM armour for DER bytes (64-column base64).
func pemEncode(_ der: [UInt8], label: String) -> String {
    let begin = Array("-----BEGIN \(label)-----\n".utf8)
    let end = Array("-----END \(label)-----\n".utf8)
    let bodyLength = (der.count + 2) / 3 * 4
    let lines = (bodyLength + 63) / 64
    let total = begin.count + bodyLength + lines + end.count
    return String(unsafeUninitializedCapacity: total) { buffer in
        var at = 0
        for byte in begin {
            buffer[at] = byte
            at += 1
        }
        at += Base64.encodeLines(der, into: UnsafeMutableBufferPointer(rebasing: buffer[at...]))
        for byte in end {
            buffer[at] = byte
            at += 1
        }
        return at
    }
}
