#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// Trust anchors for many TLS client contexts: one `X509_STORE`, shared by
/// reference (each `SSL_CTX` takes its own reference), freed in `deinit`.
///
/// `@unchecked Sendable`: the store is filled in `init` and only read
/// afterwards (OpenSSL locks it internally for lookups).
package final class TLSTrustStore: @unchecked Sendable {
    let store: OpaquePointer

    package init(trustAnchors: [Certificate]) throws {
        guard !trustAnchors.isEmpty else {
            throw CryptoError(code: "tls_setup_failed", message: "no trust anchors for the broker")
        }
        guard let store = X509_STORE_new() else {
            throw CryptoError.openSSL("tls_setup_failed", "cannot allocate X509_STORE")
        }
        self.store = store
        for anchor in trustAnchors where X509_STORE_add_cert(store, anchor.x509) != 1 {
            throw CryptoError.openSSL("tls_setup_failed", "cannot add trust anchor \(anchor.commonName ?? "?")")
        }
    }

    deinit { X509_STORE_free(store) }
}

/// An OpenSSL client `SSL_CTX` built from credentials held in memory: the
/// broker is verified against a `TLSTrustStore` (peer verification on, host
/// name or IP checked against the broker certificate's SANs, TLS 1.2 or
/// later), and the client certificate chain and key, if any, never touch the
/// disk. Used by `MQTTLoopConnection` through libmosquitto's
/// `MOSQ_OPT_SSL_CTX`, which takes its own reference.
///
/// `@unchecked Sendable`: the context is configured in `init` and never
/// changed afterwards; OpenSSL reference-counts it atomically, so several
/// connections on several threads may create `SSL` objects from it.
package final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer

    /// - Parameters:
    ///   - serverName: the broker host as dialled: an IP literal is checked
    ///     against the IP SANs, anything else against the DNS SANs.
    ///   - chain: client certificate first, then intermediates; empty for
    ///     server authentication only.
    package init(trust: TLSTrustStore, serverName: String, chain: [Certificate] = [], key: PrivateKey? = nil) throws {
        guard chain.isEmpty == (key == nil) else {
            throw CryptoError(code: "tls_setup_failed", message: "a client certificate and its key go together")
        }
        guard let method = TLS_client_method(), let context = SSL_CTX_new(method) else {
            throw CryptoError.openSSL("tls_setup_failed", "cannot create SSL_CTX")
        }
        self.context = context
        defer { CryptoError.clearOpenSSLErrors() }
        guard lanyard_SSL_CTX_set_min_tls12(context) == 1 else {
            throw CryptoError.openSSL("tls_setup_failed", "cannot require TLS 1.2")
        }
        _ = lanyard_SSL_CTX_set_release_buffers(context)
        SSL_CTX_set1_cert_store(context, trust.store)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        guard let parameters = SSL_CTX_get0_param(context) else {
            throw CryptoError.openSSL("tls_setup_failed", "no verification parameters")
        }
        let hostSet: Int32 =
            if serverName.contains(":") || serverName.allSatisfy({ $0.isNumber || $0 == "." }) {
                X509_VERIFY_PARAM_set1_ip_asc(parameters, serverName)
            } else {
                X509_VERIFY_PARAM_set1_host(parameters, serverName, 0)
            }
        guard hostSet == 1 else {
            throw CryptoError.openSSL("tls_setup_failed", "cannot check the broker name \(serverName)")
        }
        if let key, let leaf = chain.first {
            guard leaf.publicKey == key.publicKey else {
                throw CryptoError(code: "tls_setup_failed", message: "client certificate is for another key")
            }
            guard SSL_CTX_use_certificate(context, leaf.x509) == 1,
                SSL_CTX_use_PrivateKey(context, key.pkey) == 1
            else { throw CryptoError.openSSL("tls_setup_failed", "cannot use the client certificate and key") }
            for intermediate in chain.dropFirst() where lanyard_SSL_CTX_add1_chain_cert(context, intermediate.x509) != 1 {
                throw CryptoError.openSSL("tls_setup_failed", "cannot add an intermediate certificate")
            }
        }
    }

    deinit { SSL_CTX_free(context) }
}
