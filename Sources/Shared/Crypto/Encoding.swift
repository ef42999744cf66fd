#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
internal import COpenSSL

/// Base64url without padding (RFC 4648 §5, as used by JWS, RFC 7515 §2).
package enum Base64URL {
    package static func encode(_ bytes: [UInt8]) -> String {
        Base64.encode(bytes, alphabet: Base64.urlAlphabet, pad: false)
    }

    /// Strict: only `[A-Za-z0-9_-]`, no padding, no whitespace, and unused trailing bits must be zero.
    package static func decode(_ s: String) -> [UInt8]? {
        Base64.decode(Array(s.utf8), alphabet: Base64.urlAlphabet)
    }
}

/// Standard base64 (used for PEM armour).
enum Base64 {
    static let standardAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8], alphabet: [UInt8] = standardAlphabet, pad: Bool = true) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let n = UInt32(bytes[index]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
            if pad { out += Array("==".utf8) }
        } else if rest == 2 {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
            if pad { out += Array("=".utf8) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard padded base64 of `bytes` in lines of 64 characters, each
    /// ending in "\n" (PEM's body), written to `out`; returns the bytes
    /// written: 4 per 3 input bytes (rounded up) plus one newline per line.
    static func encodeLines(_ bytes: [UInt8], into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        standardAlphabet.withUnsafeBufferPointer { alphabet in
            bytes.withUnsafeBufferPointer { input in
                var at = 0
                var column = 0
                func put(_ byte: UInt8) {
                    out[at] = byte
                    at += 1
                    column += 1
                    if column == 64 {
                        out[at] = 0x0A
                        at += 1
                        column = 0
                    }
                }
                var index = 0
                while index + 3 <= input.count {
                    let n = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                    put(alphabet[Int(n >> 18 & 63)])
                    put(alphabet[Int(n >> 12 & 63)])
                    put(alphabet[Int(n >> 6 & 63)])
                    put(alphabet[Int(n & 63)])
                    index += 3
                }
                let rest = input.count - index
                if rest == 1 {
                    let n = UInt32(input[index]) << 16
                    put(alphabet[Int(n >> 18 & 63)])
                    put(alphabet[Int(n >> 12 & 63)])
                    put(0x3D)
                    put(0x3D)
                } else if rest == 2 {
                    let n = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
                    put(alphabet[Int(n >> 18 & 63)])
                    put(alphabet[Int(n >> 12 & 63)])
                    put(alphabet[Int(n >> 6 & 63)])
                    put(0x3D)
                }
                if column != 0 {
                    out[at] = 0x0A
                    at += 1
                }
                return at
            }
        }
    }

    /// Unpadded, strict decoding over `alphabet`.
    static func decode(_ text: [UInt8], alphabet: [UInt8]) -> [UInt8]? {
        var table = [Int8](repeating: -1, count: 256)
        for (value, character) in alphabet.enumerated() { table[Int(character)] = Int8(value) }
        guard text.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in text {
            let value = table[Int(character)]
            guard value >= 0 else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // Non-canonical encodings (non-zero leftover bits) are refused.
        guard accumulator == 0 else { return nil }
        return out
    }
}

package enum Digest {
    package static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { raw in
            EVP_Digest(raw.baseAddress, raw.count, &digest, &length, FetchedDigest.sha256, nil)
        }
        guard ok == 1, length == SHA256_DIGEST_LENGTH else {
            fatalError("SHA-256 unavailable: \(CryptoError.drainOpenSSLErrors())")
        }
        return digest
    }

    /// Lowercase hex.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

package enum SecureRandom {
    /// `count` bytes from OpenSSL's CSPRNG. Traps if the RNG fails: there is no safe fallback.
    package static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0 && count <= Int(Int32.max), "bad random byte count")
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        guard RAND_bytes(&out, Int32(count)) == 1 else {
            fatalError("RAND_bytes failed: \(CryptoError.drainOpenSSLErrors())")
        }
        return out
    }
}
