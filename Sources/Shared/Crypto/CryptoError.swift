#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// An error from the crypto layer. `code` is stable and safe to put on the wire
/// or in logs ("bad_pem", "bad_csr", "key_generation_failed", "signing_failed",
/// "verification_failed", "too_large", "bad_der", "bad_jws", "bad_input", ...);
/// `openSSLErrors` carries whatever OpenSSL queued when the failure happened.
package struct CryptoError: Error, CustomStringConvertible, Sendable {
    package let code: String
    package let message: String
    package let openSSLErrors: [String]

    package init(code: String, message: String, openSSLErrors: [String] = []) {
        self.code = code
        self.message = message
        self.openSSLErrors = openSSLErrors
    }

    package var description: String {
        if openSSLErrors.isEmpty { return "\(code): \(message)" }
        return "\(code): \(message) [\(openSSLErrors.joined(separator: "; "))]"
    }

    /// The one place that drains OpenSSL's (thread-local) error queue. Every
    /// failing OpenSSL call path ends here, so no stale entry leaks into the next error.
    static func openSSL(_ code: String, _ message: String) -> CryptoError {
        CryptoError(code: code, message: message, openSSLErrors: drainOpenSSLErrors())
    }

    static func drainOpenSSLErrors() -> [String] {
        var errors: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let packed = ERR_get_error()
            if packed == 0 { break }
            ERR_error_string_n(packed, &buffer, buffer.count)
            errors.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return errors
    }

    /// Discards queued OpenSSL errors on paths that report failure as a value.
    static func clearOpenSSLErrors() {
        _ = drainOpenSSLErrors()
    }
}

/// Inputs (PEM or DER) larger than this are refused before OpenSSL sees them.
let maximumEncodedInputSize = 64 * 1024

func checkInputSize(_ count: Int, _ what: String) throws {
    guard count <= maximumEncodedInputSize else {
        throw CryptoError(code: "too_large", message: "\(what) is \(count) bytes; the limit is \(maximumEncodedInputSize)")
    }
}
