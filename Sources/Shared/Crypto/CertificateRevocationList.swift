#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// CRLReason (RFC 5280 §5.3.1). 7 is unused and removeFromCRL (8) is delta-CRL only.
package enum RevocationReason: Int, Sendable, CaseIterable {
    case unspecified = 0
    case keyCompromise = 1
    case cACompromise = 2
    case affiliationChanged = 3
    case superseded = 4
    case cessationOfOperation = 5
    case certificateHold = 6
    case privilegeWithdrawn = 9

    /// RFC 5280 spelling, e.g. "keyCompromise".
    package var name: String {
        switch self {
        case .unspecified: return "unspecified"
        case .keyCompromise: return "keyCompromise"
        case .cACompromise: return "cACompromise"
        case .affiliationChanged: return "affiliationChanged"
        case .superseded: return "superseded"
        case .cessationOfOperation: return "cessationOfOperation"
        case .certificateHold: return "certificateHold"
        case .privilegeWithdrawn: return "privilegeWithdrawn"
        }
    }

    package init?(name: String) {
        guard let reason = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = reason
    }
}

package struct RevokedCertificate: Sendable, Equatable {
    /// Lowercase hex, as `Certificate.serialHex`.
    package var serialHex: String
    package var revokedAt: Date
    package var reason: RevocationReason

    package init(serialHex: String, revokedAt: Date, reason: RevocationReason = .unspecified) {
        self.serialHex = serialHex
        self.revokedAt = revokedAt
        self.reason = reason
    }
}

/// An X.509 v2 CRL.
package final class CertificateRevocationList: @unchecked Sendable {
    // @unchecked Sendable: `crl` is set once in init and never mutated; all values
    // exposed are cached at init; freed in deinit.
    let crl: OpaquePointer
    package let der: [UInt8]
    package let number: UInt64?
    package let thisUpdate: Date?
    package let nextUpdate: Date?
    package let issuerCommonName: String?
    /// Lowercase hex, like `Certificate.serialHex`.
    package let revokedSerials: [String]

    /// Takes ownership of `crl` (freed if init throws).
    init(owning crl: OpaquePointer) throws {
        guard let der = encodeDER({ i2d_X509_CRL(crl, $0) }) else {
            X509_CRL_free(crl)
            throw CryptoError.openSSL("bad_crl", "cannot encode CRL")
        }
        self.crl = crl
        self.der = der
        self.thisUpdate = date(fromASN1Time: X509_CRL_get0_lastUpdate(crl))
        self.nextUpdate = date(fromASN1Time: X509_CRL_get0_nextUpdate(crl))
        self.issuerCommonName = firstCommonName(in: X509_CRL_get_issuer(crl))
        if let raw = X509_CRL_get_ext_d2i(crl, NID_crl_number, nil, nil) {
            let integer = raw.assumingMemoryBound(to: ASN1_INTEGER.self)
            var value: UInt64 = 0
            self.number = ASN1_INTEGER_get_uint64(&value, integer) == 1 ? value : nil
            ASN1_INTEGER_free(integer)
        } else {
            self.number = nil
        }
        var serials: [String] = []
        if let revoked = X509_CRL_get_REVOKED(crl) {
            for index in 0..<lanyard_sk_X509_REVOKED_num(revoked) {
                if let entry = lanyard_sk_X509_REVOKED_value(revoked, index) {
                    serials.append(hexString(ofInteger: X509_REVOKED_get0_serialNumber(entry)))
                }
            }
        }
        self.revokedSerials = serials
        CryptoError.clearOpenSSLErrors()
    }

    deinit { X509_CRL_free(crl) }

    /// A v2 CRL signed with SHA-256, with cRLNumber and authorityKeyIdentifier extensions
    /// and a reasonCode entry extension for every reason except `.unspecified`.
    package static func make(
        issuer: Certificate, issuerKey: PrivateKey, number: UInt64, thisUpdate: Date, nextUpdate: Date,
        revoked: [RevokedCertificate]
    ) throws -> CertificateRevocationList {
        guard issuerKey.matches(issuer) else {
            throw CryptoError.openSSL("bad_input", "issuer key does not match issuer certificate")
        }
        guard nextUpdate > thisUpdate else {
            throw CryptoError(code: "bad_input", message: "nextUpdate must be after thisUpdate")
        }
        guard let crl = X509_CRL_new() else { throw CryptoError.openSSL("signing_failed", "cannot allocate CRL") }
        var owned = true
        defer { if owned { X509_CRL_free(crl) } }

        let last = try makeASN1Time(thisUpdate)
        defer { ASN1_TIME_free(last) }
        let next = try makeASN1Time(nextUpdate)
        defer { ASN1_TIME_free(next) }
        guard X509_CRL_set_version(crl, 1) == 1,
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer.x509)) == 1,
            X509_CRL_set1_lastUpdate(crl, last) == 1,
            X509_CRL_set1_nextUpdate(crl, next) == 1
        else { throw CryptoError.openSSL("signing_failed", "cannot fill CRL fields") }

        for entry in revoked {
            guard let serialBytes = bytes(fromHex: entry.serialHex) else {
                throw CryptoError(code: "bad_input", message: "serial is not hex: \(entry.serialHex)")
            }
            let serial = try makeASN1Integer(bigEndian: serialBytes)
            defer { ASN1_INTEGER_free(serial) }
            let when = try makeASN1Time(entry.revokedAt)
            defer { ASN1_TIME_free(when) }
            guard let item = X509_REVOKED_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
            guard X509_REVOKED_set_serialNumber(item, serial) == 1,
                X509_REVOKED_set_revocationDate(item, when) == 1
            else {
                X509_REVOKED_free(item)
                throw CryptoError.openSSL("signing_failed", "cannot fill CRL entry")
            }
            if entry.reason != .unspecified {
                guard let code = ASN1_ENUMERATED_new() else {
                    X509_REVOKED_free(item)
                    throw CryptoError.openSSL("signing_failed", "alloc")
                }
                defer { ASN1_ENUMERATED_free(code) }
                guard ASN1_ENUMERATED_set(code, entry.reason.rawValue) == 1,
                    X509_REVOKED_add1_ext_i2d(item, NID_crl_reason, UnsafeMutableRawPointer(code), 0, 0) == 1
                else {
                    X509_REVOKED_free(item)
                    throw CryptoError.openSSL("signing_failed", "cannot add reasonCode")
                }
            }
            guard X509_CRL_add0_revoked(crl, item) == 1 else {
                X509_REVOKED_free(item)
                throw CryptoError.openSSL("signing_failed", "cannot add CRL entry")
            }
        }
        guard X509_CRL_sort(crl) == 1 else { throw CryptoError.openSSL("signing_failed", "cannot sort CRL") }

        guard let crlNumber = ASN1_INTEGER_new() else { throw CryptoError.openSSL("signing_failed", "alloc") }
        defer { ASN1_INTEGER_free(crlNumber) }
        guard ASN1_INTEGER_set_uint64(crlNumber, number) == 1,
            X509_CRL_add1_ext_i2d(crl, NID_crl_number, UnsafeMutableRawPointer(crlNumber), 0, 0) == 1
        else { throw CryptoError.openSSL("signing_failed", "cannot add cRLNumber") }

        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer.x509, nil, nil, crl, 0)
        guard let aki = X509V3_EXT_nconf_nid(nil, &context, NID_authority_key_identifier, "keyid:always") else {
            throw CryptoError.openSSL("signing_failed", "cannot build authorityKeyIdentifier")
        }
        defer { X509_EXTENSION_free(aki) }
        guard X509_CRL_add_ext(crl, aki, -1) == 1 else { throw CryptoError.openSSL("signing_failed", "cannot add AKI") }

        guard X509_CRL_sign(crl, issuerKey.pkey, digest(for: issuerKey.pkey)) > 0 else {
            throw CryptoError.openSSL("signing_failed", "cannot sign CRL")
        }
        owned = false
        return try CertificateRevocationList(owning: crl)
    }

    package convenience init(pem: String) throws {
        let bytes = utf8Bytes(pem)
        try checkInputSize(bytes.count, "CRL PEM")
        let crl = try withReadBIO(bytes, code: "bad_pem") { bio -> OpaquePointer in
            guard let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) else {
                throw CryptoError.openSSL("bad_pem", "no X509 CRL in PEM")
            }
            return crl
        }
        try self.init(owning: crl)
    }

    package var pem: String { pemEncode(der, label: "X509 CRL") }

    /// Whether the CRL's signature verifies with `issuer`'s key and names it as issuer.
    package func isIssued(by issuer: Certificate) -> Bool {
        let sameName = X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer.x509)) == 0
        let ok = sameName && X509_CRL_verify(crl, issuer.publicKey.pkey) == 1
        CryptoError.clearOpenSSLErrors()
        return ok
    }
}
