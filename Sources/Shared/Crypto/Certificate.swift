#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// An X.509 certificate. Immutable; equality is DER equality.
package final class Certificate: @unchecked Sendable, Equatable, Hashable, CustomStringConvertible {
    // @unchecked Sendable: `x509` is set once in init and never mutated. All
    // parsed values are cached in `let`s at init, so later reads never touch
    // OpenSSL's lazily computed extension cache from several threads. Freed in deinit.
    let x509: OpaquePointer
    package let der: [UInt8]
    package let publicKey: PublicKey
    package let serialHex: String
    package let commonName: String?
    package let issuerCommonName: String?
    package let notBefore: Date
    package let notAfter: Date
    package let uriSANs: [String]
    package let dnsSANs: [String]
    package let ipSANs: [String]
    package let extendedKeyUsages: [String]
    package let isCA: Bool

    /// Takes ownership of `x509` (freed if init throws). `publicKey`, when
    /// given, must be the key the certificate carries (the issuer passes the
    /// key it just put in); otherwise it is read from the certificate.
    init(owning x509: OpaquePointer, publicKey knownKey: PublicKey? = nil) throws {
        // X509_check_purpose(-1) fills OpenSSL's extension cache now, single-threaded.
        _ = X509_check_purpose(x509, -1, 0)
        guard X509_get_extension_flags(x509) & UInt32(EXFLAG_INVALID) == 0,
            let der = encodeDER({ i2d_X509(x509, $0) }),
            let pkey = X509_get0_pubkey(x509),
            let notBefore = date(fromASN1Time: X509_get0_notBefore(x509)),
            let notAfter = date(fromASN1Time: X509_get0_notAfter(x509))
        else {
            X509_free(x509)
            throw CryptoError.openSSL("bad_certificate", "certificate is malformed or has an unusable key or validity")
        }
        do {
            // The SPKI as the certificate carries it: for a canonical
            // P-256/P-384 key the bytes OpenSSL's encoder would produce, without it.
            let carried = X509_get_X509_PUBKEY(x509).flatMap { spki in encodeDER({ i2d_X509_PUBKEY(spki, $0) }) }
            self.publicKey = try knownKey ?? carried.flatMap { PublicKey(borrowing: pkey, canonicalSPKI: $0) } ?? PublicKey(borrowing: pkey)
        } catch {
            X509_free(x509)
            throw error
        }
        self.x509 = x509
        self.der = der
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.serialHex = hexString(ofInteger: X509_get0_serialNumber(x509))
        self.commonName = firstCommonName(in: X509_get_subject_name(x509))
        self.issuerCommonName = firstCommonName(in: X509_get_issuer_name(x509))
        let names = Certificate.subjectAltNames(x509)
        self.uriSANs = names.uris
        self.dnsSANs = names.dns
        self.ipSANs = names.ips
        self.extendedKeyUsages = Certificate.extendedKeyUsages(x509)
        self.isCA = X509_get_extension_flags(x509) & UInt32(EXFLAG_CA) != 0
        CryptoError.clearOpenSSLErrors()
    }

    deinit { X509_free(x509) }

    /// The first certificate in `pem`.
    package convenience init(pem: String) throws {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "certificate PEM")
        let x509 = try withReadBIO(bytes, code: "bad_pem") { bio -> OpaquePointer in
            guard let x509 = PEM_read_bio_X509(bio, nil, nil, nil) else {
                throw CryptoError.openSSL("bad_pem", "no CERTIFICATE in PEM")
            }
            return x509
        }
        try self.init(owning: x509)
    }

    package convenience init(der: [UInt8]) throws {
        try checkInputSize(der.count, "certificate DER")
        guard let x509 = decodeDER(der, { d2i_X509(nil, $0, $1) }, free: { X509_free($0) }) else {
            throw CryptoError.openSSL("bad_der", "not a DER certificate")
        }
        try self.init(owning: x509)
    }

    /// Every certificate in `fromPEM`, in order. Throws if there is none.
    package static func chain(fromPEM pem: String) throws -> [Certificate] {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "certificate chain PEM")
        let pointers = try withReadBIO(bytes, code: "bad_pem") { bio -> [OpaquePointer] in
            var found: [OpaquePointer] = []
            while let x509 = PEM_read_bio_X509(bio, nil, nil, nil) { found.append(x509) }
            // The loop always ends with a "no start line" error; anything else is a real failure.
            let lastError = ERR_peek_last_error()
            let endOfInput = ERR_GET_REASON(lastError) == PEM_R_NO_START_LINE
            if !found.isEmpty && !endOfInput {
                for x509 in found { X509_free(x509) }
                throw CryptoError.openSSL("bad_pem", "malformed certificate in chain")
            }
            CryptoError.clearOpenSSLErrors()
            return found
        }
        guard !pointers.isEmpty else { throw CryptoError(code: "bad_pem", message: "no CERTIFICATE in PEM") }
        var chain: [Certificate] = []
        for (index, x509) in pointers.enumerated() {
            do {
                chain.append(try Certificate(owning: x509))
            } catch {
                for rest in pointers[(index + 1)...] { X509_free(rest) }
                throw error
            }
        }
        return chain
    }

    /// Concatenated PEM of `chain`.
    package static func pem(of chain: [Certificate]) -> String { chain.map(\.pem).joined() }

    package var pem: String { pemEncode(der, label: "CERTIFICATE") }

    /// Lowercase hex SHA-256 of the DER.
    package var fingerprint: String { Digest.hex(Digest.sha256(der)) }

    /// Whether `issuer`'s subject/key identifiers match this certificate's issuer
    /// (X509_check_issued) and this certificate's signature verifies with the issuer's key.
    package func isIssued(by issuer: Certificate) -> Bool {
        let matches = X509_check_issued(issuer.x509, x509) == X509_V_OK
        let verified = matches && X509_verify(x509, issuer.publicKey.pkey) == 1
        CryptoError.clearOpenSSLErrors()
        return verified
    }

    /// OpenSSL's subject-name hash (`openssl x509 -subject_hash`), eight hex
    /// digits: the file name (`HASH.r0`) under which a hashed directory such
    /// as Mosquitto's `capath` finds this CA's CRL.
    package var subjectNameHash: String {
        var ok: Int32 = 0
        let hash = X509_NAME_hash_ex(X509_get_subject_name(x509), nil, nil, &ok)
        CryptoError.clearOpenSSLErrors()
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }

    package var description: String {
        "certificate CN=\(commonName ?? "-") serial=\(serialHex) issuer=\(issuerCommonName ?? "-")"
    }

    package static func == (lhs: Certificate, rhs: Certificate) -> Bool { lhs.der == rhs.der }
    package func hash(into hasher: inout Hasher) { hasher.combine(der) }

    // MARK: Extension readers (run once at init)

    private static func subjectAltNames(_ x509: OpaquePointer) -> (uris: [String], dns: [String], ips: [String]) {
        var critical: Int32 = 0
        guard let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, &critical, nil) else { return ([], [], []) }
        let names = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(names) }
        var uris: [String] = [], dns: [String] = [], ips: [String] = []
        for index in 0..<lanyard_sk_GENERAL_NAME_num(names) {
            guard let name = lanyard_sk_GENERAL_NAME_value(names, index) else { continue }
            var type: Int32 = 0
            guard let value = GENERAL_NAME_get0_value(name, &type) else { continue }
            let string = value.assumingMemoryBound(to: ASN1_STRING.self)
            switch type {
            case GEN_URI: uris.append(String(decoding: bytes(ofASN1: string), as: UTF8.self))
            case GEN_DNS: dns.append(String(decoding: bytes(ofASN1: string), as: UTF8.self))
            case GEN_IPADD:
                if let text = ipAddressText(bytes(ofASN1: string)) { ips.append(text) }
            default: continue
            }
        }
        return (uris, dns, ips)
    }

    private static func extendedKeyUsages(_ x509: OpaquePointer) -> [String] {
        guard let raw = X509_get_ext_d2i(x509, NID_ext_key_usage, nil, nil) else { return [] }
        let usages = OpaquePointer(raw)
        defer { EXTENDED_KEY_USAGE_free(usages) }
        var oids: [String] = []
        for index in 0..<lanyard_sk_ASN1_OBJECT_num(usages) {
            if let object = lanyard_sk_ASN1_OBJECT_value(usages, index), let oid = dottedOID(object) {
                oids.append(oid)
            }
        }
        return oids
    }
}

/// Dotted-decimal text of an ASN1_OBJECT (never a short name).
func dottedOID(_ object: OpaquePointer) -> String? {
    let needed = OBJ_obj2txt(nil, 0, object, 1)
    guard needed > 0 else { return nil }
    var buffer = [CChar](repeating: 0, count: Int(needed) + 1)
    guard OBJ_obj2txt(&buffer, Int32(buffer.count), object, 1) == needed else { return nil }
    return String(decoding: buffer.prefix(Int(needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// "192.0.2.1" or full (uncompressed) lowercase IPv6 text.
func ipAddressText(_ bytes: [UInt8]) -> String? {
    switch bytes.count {
    case 4: return bytes.map { String($0) }.joined(separator: ".")
    case 16:
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    default: return nil
    }
}
