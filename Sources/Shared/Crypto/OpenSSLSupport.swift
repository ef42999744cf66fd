#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import COpenSSL

// Internal helpers shared by the wrappers in this folder. Nothing here is
// visible outside the module, and no OpenSSL type escapes it.

/// Runs `body` with a read-only memory BIO over `bytes`.
func withReadBIO<T>(_ bytes: [UInt8], code: String, _ body: (OpaquePointer) throws -> T) throws -> T {
    guard !bytes.isEmpty else { throw CryptoError(code: code, message: "empty input") }
    return try bytes.withUnsafeBytes { raw in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else {
            throw CryptoError.openSSL(code, "cannot create memory BIO")
        }
        defer { BIO_free(bio) }
        return try body(bio)
    }
}

/// Runs `write` against a fresh memory BIO and returns what it wrote.
/// `secure` uses the secure-heap BIO (cleared on free) for private key material.
func writeToBIO(code: String, secure: Bool = false, _ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
    guard let bio = BIO_new(secure ? BIO_s_secmem() : BIO_s_mem()) else {
        throw CryptoError.openSSL(code, "cannot create memory BIO")
    }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw CryptoError.openSSL(code, "cannot encode") }
    var data: UnsafeMutablePointer<CChar>? = nil
    let length = lanyard_BIO_get_mem_data(bio, &data)
    guard length > 0, let data else { throw CryptoError.openSSL(code, "encoder wrote nothing") }
    return Array(UnsafeRawBufferPointer(start: data, count: length))
}

/// DER-encodes with an OpenSSL `i2d_*` function (called twice: size, then bytes).
func encodeDER(_ i2d: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) -> [UInt8]? {
    let length = i2d(nil)
    guard length > 0 else { return nil }
    var out = [UInt8](repeating: 0, count: Int(length))
    let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var cursor = buffer.baseAddress
        return i2d(&cursor)
    }
    return written == length ? out : nil
}

/// DER-decodes with an OpenSSL `d2i_*` function; refuses (and frees) objects followed by trailing bytes.
func decodeDER(
    _ bytes: [UInt8],
    _ d2i: (UnsafeMutablePointer<UnsafePointer<UInt8>?>, Int) -> OpaquePointer?,
    free: (OpaquePointer) -> Void
) -> OpaquePointer? {
    guard !bytes.isEmpty else { return nil }
    return bytes.withUnsafeBufferPointer { buffer -> OpaquePointer? in
        guard let base = buffer.baseAddress else { return nil }
        var cursor: UnsafePointer<UInt8>? = base
        guard let object = d2i(&cursor, buffer.count) else { return nil }
        guard let end = cursor, end - base == buffer.count else {
            free(object)
            return nil
        }
        return object
    }
}

func utf8Bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

func string(fromASN1 value: UnsafePointer<ASN1_STRING>?) -> String? {
    guard let value else { return nil }
    var out: UnsafeMutablePointer<UInt8>? = nil
    let length = ASN1_STRING_to_UTF8(&out, value)
    guard length >= 0, let out else {
        CryptoError.clearOpenSSLErrors()
        return nil
    }
    defer { lanyard_OPENSSL_free(out) }
    return String(decoding: UnsafeBufferPointer(start: out, count: Int(length)), as: UTF8.self)
}

/// Raw bytes of an IA5String / OCTET STRING (no charset conversion).
func bytes(ofASN1 value: UnsafePointer<ASN1_STRING>?) -> [UInt8] {
    guard let value, let data = ASN1_STRING_get0_data(value) else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(value))))
}

/// First commonName of an X509_NAME, as UTF-8.
func firstCommonName(in name: OpaquePointer?) -> String? {
    guard let name else { return nil }
    let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
    guard index >= 0, let entry = X509_NAME_get_entry(name, index) else { return nil }
    return string(fromASN1: X509_NAME_ENTRY_get_data(entry))
}

/// Builds an X509_NAME with an optional O and a CN (UTF8String). Caller frees.
func makeName(commonName: String, organization: String?) throws -> OpaquePointer {
    guard let name = X509_NAME_new() else { throw CryptoError.openSSL("bad_input", "cannot allocate name") }
    var entries: [(Int32, String)] = []
    if let organization { entries.append((NID_organizationName, organization)) }
    entries.append((NID_commonName, commonName))
    for (nid, value) in entries {
        guard !value.isEmpty, !value.utf8.contains(0) else {
            X509_NAME_free(name)
            throw CryptoError(code: "bad_input", message: "name attribute must be non-empty and contain no NUL")
        }
        let bytes = utf8Bytes(value)
        guard X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, bytes, Int32(bytes.count), -1, 0) == 1 else {
            X509_NAME_free(name)
            throw CryptoError.openSSL("bad_input", "name attribute refused (too long?)")
        }
    }
    return name
}

// MARK: Time

func date(fromASN1Time time: UnsafePointer<ASN1_TIME>?) -> Date? {
    guard let time else { return nil }
    var components = tm()
    guard ASN1_TIME_to_tm(time, &components) == 1 else {
        CryptoError.clearOpenSSLErrors()
        return nil
    }
    return Date(timeIntervalSince1970: TimeInterval(timegm(&components)))
}

/// Converts to `time_t`, truncating sub-second precision.
func timeT(_ date: Date) -> time_t {
    time_t(date.timeIntervalSince1970.rounded(.down))
}

/// A new ASN1_TIME (UTCTime up to 2049, GeneralizedTime after, per RFC 5280). Caller frees.
func makeASN1Time(_ date: Date) throws -> UnsafeMutablePointer<ASN1_TIME> {
    guard let time = ASN1_TIME_set(nil, timeT(date)) else {
        throw CryptoError.openSSL("bad_input", "time out of range")
    }
    return time
}

// MARK: Serial numbers

/// Lowercase hex of an ASN1_INTEGER without leading zeros ("0" for zero, "-" prefix if negative).
func hexString(ofInteger integer: UnsafePointer<ASN1_INTEGER>?) -> String {
    guard let integer, let bn = ASN1_INTEGER_to_BN(integer, nil) else {
        CryptoError.clearOpenSSLErrors()
        return ""
    }
    defer { BN_free(bn) }
    guard let hex = BN_bn2hex(bn) else { return "" }
    defer { lanyard_OPENSSL_free(hex) }
    var text = String(cString: hex).lowercased()
    var negative = false
    if text.hasPrefix("-") { negative = true; text.removeFirst() }
    while text.count > 1 && text.hasPrefix("0") { text.removeFirst() }
    return negative ? "-" + text : text
}

/// A new ASN1_INTEGER from big-endian unsigned bytes. Caller frees.
func makeASN1Integer(bigEndian bytes: [UInt8]) throws -> UnsafeMutablePointer<ASN1_INTEGER> {
    guard let bn = BN_bin2bn(bytes, Int32(bytes.count), nil) else {
        throw CryptoError.openSSL("bad_input", "bad integer")
    }
    defer { BN_free(bn) }
    guard let integer = BN_to_ASN1_INTEGER(bn, nil) else { throw CryptoError.openSSL("bad_input", "bad integer") }
    return integer
}

/// Parses lowercase/uppercase hex (no sign, no prefix) into big-endian bytes.
func bytes(fromHex hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard !digits.isEmpty, digits.count <= 64 else { return nil }
    func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    let padded = digits.count % 2 == 1 ? [UInt8(ascii: "0")] + digits : digits
    var out: [UInt8] = []
    out.reserveCapacity(padded.count / 2)
    var index = 0
    while index < padded.count {
        guard let high = value(padded[index]), let low = value(padded[index + 1]) else { return nil }
        out.append(high << 4 | low)
        index += 2
    }
    return out
}
