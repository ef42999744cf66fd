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
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#endif
