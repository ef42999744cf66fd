#ifndef LANYARD_COPENSSL_SHIM_H
#define LANYARD_COPENSSL_SHIM_H
// OpenSSL 3.0 headers Lanyard uses. Macros and variadic functions that Swift
// cannot import get `lanyard_`-prefixed static inline wrappers below.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

// ---- Wrappers for macros Swift cannot import (used by Sources/Shared/Crypto) ----

static inline long lanyard_BIO_get_mem_data(BIO *bio, char **out) {
    return BIO_get_mem_data(bio, out);
}
static inline void lanyard_OPENSSL_free(void *p) { OPENSSL_free(p); }

// STACK_OF(X509)
static inline STACK_OF(X509) *lanyard_sk_X509_new_null(void) { return sk_X509_new_null(); }
static inline int lanyard_sk_X509_push(STACK_OF(X509) *sk, X509 *x) { return sk_X509_push(sk, x); }
// Frees the stack only; the certificates stay owned by their Swift wrappers.
static inline void lanyard_sk_X509_free(STACK_OF(X509) *sk) { sk_X509_free(sk); }

// STACK_OF(X509_EXTENSION), as returned by X509_REQ_get_extensions.
static inline int lanyard_sk_X509_EXTENSION_num(const STACK_OF(X509_EXTENSION) *sk) {
    return sk_X509_EXTENSION_num(sk);
}
static inline void lanyard_sk_X509_EXTENSION_pop_free(STACK_OF(X509_EXTENSION) *sk) {
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
}

// GENERAL_NAMES (subjectAltName)
static inline int lanyard_sk_GENERAL_NAME_num(const GENERAL_NAMES *sk) { return sk_GENERAL_NAME_num(sk); }
static inline GENERAL_NAME *lanyard_sk_GENERAL_NAME_value(const GENERAL_NAMES *sk, int i) {
    return sk_GENERAL_NAME_value(sk, i);
}
static inline int lanyard_sk_GENERAL_NAME_push(GENERAL_NAMES *sk, GENERAL_NAME *g) {
    return sk_GENERAL_NAME_push(sk, g);
}

// EXTENDED_KEY_USAGE (STACK_OF(ASN1_OBJECT))
static inline int lanyard_sk_ASN1_OBJECT_num(const EXTENDED_KEY_USAGE *sk) { return sk_ASN1_OBJECT_num(sk); }
static inline ASN1_OBJECT *lanyard_sk_ASN1_OBJECT_value(const EXTENDED_KEY_USAGE *sk, int i) {
    return sk_ASN1_OBJECT_value(sk, i);
}
static inline int lanyard_sk_ASN1_OBJECT_push(EXTENDED_KEY_USAGE *sk, ASN1_OBJECT *o) {
    return sk_ASN1_OBJECT_push(sk, o);
}

// STACK_OF(X509_REVOKED), owned by its CRL.
static inline int lanyard_sk_X509_REVOKED_num(const STACK_OF(X509_REVOKED) *sk) { return sk_X509_REVOKED_num(sk); }
static inline X509_REVOKED *lanyard_sk_X509_REVOKED_value(const STACK_OF(X509_REVOKED) *sk, int i) {
    return sk_X509_REVOKED_value(sk, i);
}

// ---- TLS client (Sources/Shared/AdminAPI/HTTPSClient.swift) ----
static inline long lanyard_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }
static inline long lanyard_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) { return SSL_CTX_set_min_proto_version(ctx, version); }

// ---- TLS client contexts with in-memory credentials (Sources/Shared/MQTT/TLSClientContext.swift) ----
static inline int lanyard_SSL_CTX_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline int lanyard_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *x) {
    return (int)SSL_CTX_add1_chain_cert(ctx, x);
}
static inline long lanyard_SSL_CTX_set_release_buffers(SSL_CTX *ctx) {
    return SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

// ---- Certificate signing (Sources/Shared/Crypto/CertificateIssuer.swift) ----
// X509_set_pubkey with an EVP_PKEY from a provider (every key OpenSSL 3
// decodes or generates) runs an OSSL_ENCODER to DER and decodes that DER again
// through OSSL_DECODER: about two thirds of signing a leaf certificate. With a
// legacy EC key it uses the EC method's own encoder instead. This makes that
// legacy copy of an EC public key (curve `group`, encoded point `point`);
// the caller checks that its SubjectPublicKeyInfo is byte for byte the
// original's before using it. NULL on any failure. The deprecation warnings
// of the EC_KEY calls are silenced here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
// `group` is made once per process (CurveGroup in CertificateIssuer.swift,
// never freed) and only read here: EC_KEY_set_group takes its own copy.
// EC_GROUP_new_by_curve_name for every certificate built the curve from its
// parameters each time (~270,000 instructions).
static inline EVP_PKEY *lanyard_legacy_ec_public_key_on(const EC_GROUP *group, const unsigned char *point, size_t length) {
    EC_KEY *ec = EC_KEY_new();
    if (ec == NULL) return NULL;
    if (EC_KEY_set_group(ec, group) != 1 || EC_KEY_oct2key(ec, point, length, NULL) != 1) { EC_KEY_free(ec); return NULL; }
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (pkey == NULL || EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) { EVP_PKEY_free(pkey); EC_KEY_free(ec); return NULL; }
    return pkey;
}
#pragma GCC diagnostic pop

// ---- A CSR's self-signature checked on its legacy EC key (CertificateSigningRequest.verifySignature) ----
// X509_REQ_verify_ex on a legacy EC key first exports the key to the default
// provider (a new provider key, its curve group built from parameters) for
// every request, then calls ECDSA_verify on that copy. This calls ECDSA_verify
// on the legacy key directly, over the same bytes with the same digest:
// `signed` is the request's CertificationRequestInfo as it was received (the
// bytes X509_REQ_verify hashes). Returns 1 (verifies) or 0 (does not); -1 when
// the request is not a plain ecdsa-with-SHA256/384 one (algorithm parameters
// present, unused bits in the signature, not a legacy EC key), for which the
// caller uses X509_REQ_verify_ex.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline int lanyard_X509_REQ_verify_legacy_ec(const X509_REQ *req, const EVP_PKEY *pkey, const unsigned char *signed_bytes, size_t signed_length,
                                                    const EVP_MD *sha256, const EVP_MD *sha384) {
    const ASN1_BIT_STRING *signature = NULL;
    const X509_ALGOR *algorithm = NULL;
    X509_REQ_get0_signature(req, &signature, &algorithm);
    if (signature == NULL || algorithm == NULL) return -1;
    const ASN1_OBJECT *oid = NULL;
    int parameter_type = 0;
    const void *parameter = NULL;
    X509_ALGOR_get0(&oid, &parameter_type, &parameter, algorithm);
    const EVP_MD *md;
    switch (OBJ_obj2nid(oid)) {
    case NID_ecdsa_with_SHA256: md = sha256; break;
    case NID_ecdsa_with_SHA384: md = sha384; break;
    default: return -1;
    }
    if (parameter_type != V_ASN1_UNDEF || (signature->flags & 0x07) != 0) return -1;
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
    if (ec == NULL) return -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (EVP_Digest(signed_bytes, signed_length, digest, &digest_length, md, NULL) != 1) return -1;
    return ECDSA_verify(0, digest, (int)digest_length, ASN1_STRING_get0_data(signature), ASN1_STRING_length(signature), (EC_KEY *)ec) == 1 ? 1 : 0;
}
#pragma GCC diagnostic pop

// ---- CSR parsing without OpenSSL 3's key decoder (Sources/Shared/Crypto/CertificateSigningRequest.swift) ----
// d2i_X509_REQ decodes the request's public key through an OSSL_DECODER
// chain built for every call (~1.4 million instructions, a third of issuing a
// certificate). Parsed in a library context holding only the "null" provider
// (no algorithms), the request keeps its SubjectPublicKeyInfo as bytes and no
// key; the caller then makes the key itself from canonical P-256/P-384 bytes
// and verifies the signature in the default context, or parses the request
// again the ordinary way for any other key.
static inline OSSL_LIB_CTX *lanyard_keyless_libctx(void) {
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx == NULL) return NULL;
    if (OSSL_PROVIDER_load(ctx, "null") == NULL) { OSSL_LIB_CTX_free(ctx); return NULL; }
    return ctx;
}
static inline X509_REQ *lanyard_d2i_X509_REQ_in(OSSL_LIB_CTX *ctx, const unsigned char **in, long length) {
    return (X509_REQ *)ASN1_item_d2i_ex(NULL, in, length, ASN1_ITEM_rptr(X509_REQ), ctx, NULL);
}

#endif
