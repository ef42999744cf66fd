#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// keyUsage bits a Lanyard certificate may carry.
package struct KeyUsage: OptionSet, Sendable, Hashable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    package static let digitalSignature = KeyUsage(rawValue: 1 << 0)
    package static let keyEncipherment = KeyUsage(rawValue: 1 << 1)
    package static let keyCertSign = KeyUsage(rawValue: 1 << 2)
    package static let cRLSign = KeyUsage(rawValue: 1 << 3)

    /// (option, RFC 5280 KeyUsage bit number)
    static let bits: [(KeyUsage, Int32)] = [
        (.digitalSignature, 0), (.keyEncipherment, 2), (.keyCertSign, 5), (.cRLSign, 6),
    ]
}

/// Extended key usage OIDs (dotted).
package enum ExtendedKeyUsage {
    package static let serverAuth = "1.3.6.1.5.5.7.3.1"
    package static let clientAuth = "1.3.6.1.5.5.7.3.2"
    /// Private-arc OID (UUID-based, ITU-T X.667 `2.25.<uuid>`) for Lanyard's command signer.
    /// Device certificates never get it.
    package static let lanyardCommandSigning = "2.25.177245130926134786519307427466216532891"
}

/// Everything that goes into a certificate we issue. Nothing is taken from the CSR but its key.
package struct CertificateTemplate: Sendable {
    package var commonName: String
    package var organization: String?
    /// Big-endian unsigned bytes (use `randomSerial()`).
    package var serial: [UInt8]
    package var notBefore: Date
    package var notAfter: Date
    package var isCA: Bool
    /// Only used when `isCA`.
    package var pathLength: Int?
    package var keyUsage: KeyUsage
    package var extendedKeyUsages: [String]
    package var uriSANs: [String]
    package var dnsSANs: [String]
    /// IPv4 or IPv6 literals.
    package var ipSANs: [String]

    /// Defaults: not a CA, keyUsage digitalSignature, no EKU, no SANs.
    package init(commonName: String, serial: [UInt8], notBefore: Date, notAfter: Date) {
        self.commonName = commonName
        self.organization = nil
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.isCA = false
        self.pathLength = nil
        self.keyUsage = [.digitalSignature]
        self.extendedKeyUsages = []
        self.uriSANs = []
        self.dnsSANs = []
        self.ipSANs = []
    }

    /// 16 random bytes, top bit cleared (positive) and first byte non-zero,
    /// so the serial is always a 16-byte positive INTEGER with ~127 bits of entropy.
    package static func randomSerial() -> [UInt8] {
        while true {
            var serial = SecureRandom.bytes(16)
            serial[0] &= 0x7f
            if serial[0] != 0 { return serial }
        }
    }
}

/// The named curves' EC_GROUPs, made once per process (never freed) for the
/// legacy key copies of `CertificateIssuer.setPublicKey`; read-only after
/// creation, so shared between threads.
enum CurveGroup {
    nonisolated(unsafe) static let p256: OpaquePointer? = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)
    nonisolated(unsafe) static let p384: OpaquePointer? = EC_GROUP_new_by_curve_name(NID_secp384r1)
}

package enum CertificateIssuer {
    /// Builds and signs a v3 certificate from `template` only (never from CSR extensions):
    /// basicConstraints (critical), keyUsage (critical), EKU, SAN, subjectKeyIdentifier and,
    /// unless self-signed, authorityKeyIdentifier (issuer's key id). SHA-256 (ECDSA for EC keys).
    /// `issuer == nil` means self-signed: issuer name = subject name, `issuerKey` must match `subjectKey`.
    package static func sign(
        _ template: CertificateTemplate, subjectKey: PublicKey, issuer: Certificate?, issuerKey: PrivateKey
    ) throws -> Certificate {
        try validate(template)
        if let issuer {
            guard issuerKey.matches(issuer) else {
                throw CryptoError.openSSL("bad_input", "issuer key does not match issuer certificate")
            }
            guard issuer.isCA else { throw CryptoError(code: "bad_input", message: "issuer certificate is not a CA") }
        } else if subjectKey != issuerKey.publicKey {
            throw CryptoError(code: "bad_input", message: "self-signed certificate needs the subject's own key")
        }

        guard let x509 = X509_new() else { throw CryptoError.openSSL("signing_failed", "cannot allocate certificate") }
        var owned = true
        defer { if owned { X509_free(x509) } }

        let serial = try makeASN1Integer(bigEndian: template.serial)
        defer { ASN1_INTEGER_free(serial) }
        let subject = try makeName(commonName: template.commonName, organization: template.organization)
        defer { X509_NAME_free(subject) }
        let notBefore = try makeASN1Time(template.notBefore)
        defer { ASN1_TIME_free(notBefore) }
        let notAfter = try makeASN1Time(template.notAfter)
        defer { ASN1_TIME_free(notAfter) }

        guard X509_set_version(x509, 2) == 1,
            X509_set_serialNumber(x509, serial) == 1,
            X509_set_subject_name(x509, subject) == 1,
            X509_set_issuer_name(x509, issuer.map { X509_get_subject_name($0.x509) } ?? subject) == 1,
            X509_set1_notBefore(x509, notBefore) == 1,
            X509_set1_notAfter(x509, notAfter) == 1,
            setPublicKey(x509, subjectKey)
        else { throw CryptoError.openSSL("signing_failed", "cannot fill certificate fields") }

        try addBasicConstraints(x509, template)
        try addKeyUsage(x509, template.keyUsage)
        if !template.extendedKeyUsages.isEmpty { try addExtendedKeyUsage(x509, template.extendedKeyUsages) }
        if !(template.uriSANs.isEmpty && template.dnsSANs.isEmpty && template.ipSANs.isEmpty) {
            try addSubjectAltName(x509, template)
        }
        // subjectKeyIdentifier: RFC 5280 4.2.1.2 method (1), the SHA-1 of the
        // subjectPublicKey BIT STRING, as OpenSSL's "hash" computes it; built
        // directly so that each certificate does not go through the config
        // parser and a SHA-1 fetch by name.
        try addSubjectKeyIdentifier(x509)
        if let issuer {
            // authorityKeyIdentifier = the issuer's own subjectKeyIdentifier ("keyid:always").
            if let keyID = X509_get0_subject_key_id(issuer.x509) {
                try addAuthorityKeyIdentifier(x509, keyID)
            } else {
                // Fixed configuration strings only: no caller text reaches OpenSSL's config parser.
                var context = X509V3_CTX()
                X509V3_set_ctx(&context, issuer.x509, x509, nil, nil, 0)
                try addConfigured(x509, &context, NID_authority_key_identifier, "keyid:always")
            }
        }

        guard X509_sign(x509, issuerKey.pkey, digest(for: issuerKey.pkey)) > 0 else {
            throw CryptoError.openSSL("signing_failed", "cannot sign certificate")
        }
        owned = false
        // The certificate carries exactly `subjectKey` (X509_set_pubkey above):
        // reuse its wrapper instead of decoding and re-encoding the key.
        return try Certificate(owning: x509, publicKey: subjectKey)
    }

    /// X509_set_pubkey, through a legacy EC copy of `key` when its
    /// SubjectPublicKeyInfo comes out byte for byte the same (P-256, P-384),
    /// which avoids OpenSSL 3's encoder + decoder round trip (shim.h,
    /// `lanyard_legacy_ec_public_key_on`); any other key as given.
    private static func setPublicKey(_ x509: OpaquePointer, _ key: PublicKey) -> Bool {
        // A CSR's canonical key is already such a legacy copy (PublicKey.init?(canonicalSPKI:)).
        if key.isLegacyCanonicalEC { return X509_set_pubkey(x509, key.pkey) == 1 }
        let group: OpaquePointer?
        switch key.algorithm {
        case .p256: group = CurveGroup.p256
        case .p384: group = CurveGroup.p384
        default: return X509_set_pubkey(x509, key.pkey) == 1
        }
        // The point straight from a canonical SPKI (named curve, uncompressed
        // point); otherwise as OpenSSL encodes it.
        var point = CanonicalSPKI.point(of: key.spkiDER, key.algorithm).map(Array.init) ?? []
        if point.isEmpty {
            point = [UInt8](repeating: 0, count: 133)
            var length = 0
            guard EVP_PKEY_get_octet_string_param(key.pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &point, point.count, &length) == 1 else {
                CryptoError.clearOpenSSLErrors()
                return X509_set_pubkey(x509, key.pkey) == 1
            }
            point.removeSubrange(length...)
        }
        guard let group, let legacy = lanyard_legacy_ec_public_key_on(group, point, point.count) else {
            CryptoError.clearOpenSSLErrors()
            return X509_set_pubkey(x509, key.pkey) == 1
        }
        defer { EVP_PKEY_free(legacy) }
        guard encodeDER({ i2d_PUBKEY(legacy, $0) }) == key.spkiDER else { return X509_set_pubkey(x509, key.pkey) == 1 }
        return X509_set_pubkey(x509, legacy) == 1
    }

    private static func addSubjectKeyIdentifier(_ x509: OpaquePointer) throws {
        guard let bits = X509_get0_pubkey_bitstr(x509), let data = bits.pointee.data else {
            throw CryptoError.openSSL("signing_failed", "certificate has no public key")
        }
        var hash = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_Digest(data, Int(bits.pointee.length), &hash, &length, FetchedDigest.sha1, nil) == 1 else {
            throw CryptoError.openSSL("signing_failed", "cannot hash public key")
        }
        guard let keyID = ASN1_OCTET_STRING_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { ASN1_OCTET_STRING_free(keyID) }
        guard ASN1_OCTET_STRING_set(keyID, hash, Int32(length)) == 1 else { throw CryptoError.openSSL("signing_failed", "subjectKeyIdentifier") }
        try add(x509, NID_subject_key_identifier, UnsafeMutableRawPointer(keyID), critical: false)
    }

    private static func addAuthorityKeyIdentifier(_ x509: OpaquePointer, _ issuerKeyID: UnsafePointer<ASN1_OCTET_STRING>) throws {
        guard let identifier = AUTHORITY_KEYID_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { AUTHORITY_KEYID_free(identifier) }
        guard let keyID = ASN1_OCTET_STRING_dup(issuerKeyID) else { throw CryptoError.openSSL("signing_failed", "alloc") }
        identifier.pointee.keyid = keyID  // freed with `identifier`
        try add(x509, NID_authority_key_identifier, UnsafeMutableRawPointer(identifier), critical: false)
    }

    private static func validate(_ template: CertificateTemplate) throws {
        func refuse(_ message: String) -> CryptoError { CryptoError(code: "bad_input", message: message) }
        guard !template.serial.isEmpty, template.serial.count <= 20, template.serial.contains(where: { $0 != 0 }) else {
            throw refuse("serial must be 1...20 bytes and non-zero")
        }
        guard template.serial[0] & 0x80 == 0 else { throw refuse("serial must be positive (top bit clear)") }
        guard template.notAfter > template.notBefore else { throw refuse("notAfter must be after notBefore") }
        if let pathLength = template.pathLength {
            guard template.isCA, pathLength >= 0 else { throw refuse("pathLength needs isCA and must be >= 0") }
        }
        for oid in template.extendedKeyUsages {
            guard isDottedOID(oid) else { throw refuse("EKU must be a dotted OID: \(oid)") }
        }
        for name in template.uriSANs + template.dnsSANs {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw refuse("SAN must be printable ASCII without spaces: \(name)")
            }
        }
    }

    private static func isDottedOID(_ oid: String) -> Bool {
        let arcs = oid.split(separator: ".", omittingEmptySubsequences: false)
        return arcs.count >= 2 && arcs.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
    }

    private static func add(_ x509: OpaquePointer, _ nid: Int32, _ value: UnsafeMutableRawPointer, critical: Bool) throws {
        guard X509_add1_ext_i2d(x509, nid, value, critical ? 1 : 0, UInt(X509V3_ADD_REPLACE)) == 1 else {
            throw CryptoError.openSSL("signing_failed", "cannot add extension \(String(cString: OBJ_nid2sn(nid)))")
        }
    }

    private static func addBasicConstraints(_ x509: OpaquePointer, _ template: CertificateTemplate) throws {
        guard let constraints = BASIC_CONSTRAINTS_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { BASIC_CONSTRAINTS_free(constraints) }
        constraints.pointee.ca = template.isCA ? 0xff : 0
        if template.isCA, let pathLength = template.pathLength {
            guard let length = ASN1_INTEGER_new(), ASN1_INTEGER_set_int64(length, Int64(pathLength)) == 1 else {
                throw CryptoError.openSSL("signing_failed", "bad pathLength")
            }
            constraints.pointee.pathlen = length  // freed with `constraints`
        }
        try add(x509, NID_basic_constraints, UnsafeMutableRawPointer(constraints), critical: true)
    }

    private static func addKeyUsage(_ x509: OpaquePointer, _ usage: KeyUsage) throws {
        guard !usage.isEmpty else { return }
        guard let bits = ASN1_BIT_STRING_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { ASN1_BIT_STRING_free(bits) }
        for (option, bit) in KeyUsage.bits where usage.contains(option) {
            guard ASN1_BIT_STRING_set_bit(bits, bit, 1) == 1 else { throw CryptoError.openSSL("signing_failed", "keyUsage") }
        }
        try add(x509, NID_key_usage, UnsafeMutableRawPointer(bits), critical: true)
    }

    private static func addExtendedKeyUsage(_ x509: OpaquePointer, _ oids: [String]) throws {
        guard let usages = EXTENDED_KEY_USAGE_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { EXTENDED_KEY_USAGE_free(usages) }
        for oid in oids {
            guard let object = OBJ_txt2obj(oid, 1) else { throw CryptoError.openSSL("bad_input", "bad EKU OID \(oid)") }
            guard lanyard_sk_ASN1_OBJECT_push(usages, object) > 0 else {
                ASN1_OBJECT_free(object)
                throw CryptoError.openSSL("signing_failed", "EKU")
            }
        }
        try add(x509, NID_ext_key_usage, UnsafeMutableRawPointer(usages), critical: false)
    }

    private static func addSubjectAltName(_ x509: OpaquePointer, _ template: CertificateTemplate) throws {
        guard let names = GENERAL_NAMES_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { GENERAL_NAMES_free(names) }
        func append(_ type: Int32, _ value: UnsafeMutablePointer<ASN1_STRING>) throws {
            guard let name = GENERAL_NAME_new() else {
                ASN1_STRING_free(value)
                throw CryptoError.openSSL("signing_failed", "alloc")
            }
            GENERAL_NAME_set0_value(name, type, UnsafeMutableRawPointer(value))
            guard lanyard_sk_GENERAL_NAME_push(names, name) > 0 else {
                GENERAL_NAME_free(name)
                throw CryptoError.openSSL("signing_failed", "SAN")
            }
        }
        func ia5(_ text: String) throws -> UnsafeMutablePointer<ASN1_STRING> {
            let bytes = utf8Bytes(text)
            guard let string = ASN1_IA5STRING_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
            guard ASN1_STRING_set(string, bytes, Int32(bytes.count)) == 1 else {
                ASN1_STRING_free(string)
                throw CryptoError.openSSL("signing_failed", "SAN")
            }
            return string
        }
        for uri in template.uriSANs { try append(GEN_URI, try ia5(uri)) }
        for dns in template.dnsSANs { try append(GEN_DNS, try ia5(dns)) }
        for ip in template.ipSANs {
            guard let octets = a2i_IPADDRESS(ip) else { throw CryptoError.openSSL("bad_input", "bad IP SAN \(ip)") }
            try append(GEN_IPADD, octets)
        }
        try add(x509, NID_subject_alt_name, UnsafeMutableRawPointer(names), critical: false)
    }

    private static func addConfigured(
        _ x509: OpaquePointer, _ context: inout X509V3_CTX, _ nid: Int32, _ value: String
    ) throws {
        guard let ext = X509V3_EXT_nconf_nid(nil, &context, nid, value) else {
            throw CryptoError.openSSL("signing_failed", "cannot build extension \(value)")
        }
        defer { X509_EXTENSION_free(ext) }
        guard X509_add_ext(x509, ext, -1) == 1 else { throw CryptoError.openSSL("signing_failed", "cannot add extension") }
    }
}
