#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// The outcome of a chain check. `errorCode` is OpenSSL's X509_V_ERR_* value (0 when ok).
package struct ChainVerification: Sendable {
    package let ok: Bool
    package let reason: String?
    package let errorCode: Int32
}

/// Verifies leaf certificates against a fixed set of trusted certificates.
package struct ChainVerifier: Sendable {
    package let trustAnchors: [Certificate]

    /// Every certificate given is trusted (X509_V_FLAG_PARTIAL_CHAIN), intermediates included.
    package init(trustAnchors: [Certificate]) {
        self.trustAnchors = trustAnchors
    }

    /// Path validation at `time`. If `requiredEKU` is given, the leaf must list it.
    /// If `crls` is non-empty, the leaf must be covered by one of them and not be revoked
    /// (X509_V_FLAG_CRL_CHECK).
    package func verify(
        _ leaf: Certificate, intermediates: [Certificate] = [], at time: Date, requiredEKU: String? = nil,
        crls: [CertificateRevocationList] = []
    ) -> ChainVerification {
        defer { CryptoError.clearOpenSSLErrors() }
        func failure(_ reason: String, _ code: Int32 = X509_V_ERR_UNSPECIFIED) -> ChainVerification {
            ChainVerification(ok: false, reason: reason, errorCode: code)
        }
        guard !trustAnchors.isEmpty else { return failure("no trust anchors") }
        guard let store = X509_STORE_new() else { return failure("cannot allocate X509_STORE") }
        defer { X509_STORE_free(store) }
        for anchor in trustAnchors {
            guard X509_STORE_add_cert(store, anchor.x509) == 1 else { return failure("cannot add trust anchor") }
        }
        for crl in crls {
            guard X509_STORE_add_crl(store, crl.crl) == 1 else { return failure("cannot add CRL") }
        }
        guard let untrusted = lanyard_sk_X509_new_null() else { return failure("cannot allocate stack") }
        // The stack does not own its entries; `intermediates` keeps them alive until we return.
        defer { lanyard_sk_X509_free(untrusted) }
        for certificate in intermediates {
            guard lanyard_sk_X509_push(untrusted, certificate.x509) > 0 else { return failure("cannot add intermediate") }
        }
        guard let context = X509_STORE_CTX_new() else { return failure("cannot allocate X509_STORE_CTX") }
        defer { X509_STORE_CTX_free(context) }
        guard X509_STORE_CTX_init(context, store, leaf.x509, untrusted) == 1,
            let parameters = X509_STORE_CTX_get0_param(context)
        else { return failure("cannot initialise verification") }
        var flags = UInt(X509_V_FLAG_PARTIAL_CHAIN)
        if !crls.isEmpty { flags |= UInt(X509_V_FLAG_CRL_CHECK) }
        X509_VERIFY_PARAM_set_flags(parameters, flags)
        X509_VERIFY_PARAM_set_time(parameters, timeT(time))

        let result = X509_verify_cert(context)
        guard result == 1 else {
            let code = X509_STORE_CTX_get_error(context)
            let reason = X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "verification failed"
            return failure(reason, code == X509_V_OK ? X509_V_ERR_UNSPECIFIED : code)
        }
        if let requiredEKU, !leaf.extendedKeyUsages.contains(requiredEKU) {
            return failure("leaf lacks required extended key usage \(requiredEKU)", X509_V_ERR_INVALID_PURPOSE)
        }
        return ChainVerification(ok: true, reason: nil, errorCode: X509_V_OK)
    }
}
