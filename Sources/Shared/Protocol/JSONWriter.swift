#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// Hand-written JSON for the two things the controller encodes for every
/// certificate: the reply (`CertificateReply`) and the audit entry's hashed
/// field list (`[String]`). Byte for byte what `WireCodec.encode` (Foundation's
/// `JSONEncoder` with sorted keys and unescaped slashes) produces — tested
/// against it for every Unicode scalar and for random replies — at a fraction
/// of the cost (JSONEncoder builds a tree of boxed values first).
extension WireCodec {
    /// `WireCodec.encode(reply)`, without JSONEncoder. Error replies (rare)
    /// still go through JSONEncoder.
    package static func encodeReply(_ reply: CertificateReply) -> [UInt8] {
        guard reply.error == nil else { return encode(reply) }
        var out = JSONOutput(capacity: 256 + (reply.chain?.utf8.count ?? 0) + (reply.trustBundle?.utf8.count ?? 0))
        // Keys in JSONEncoder's `.sortedKeys` order; nil fields are left out as it does.
        out.open()
        if let chain = reply.chain { out.key("chain"); out.string(chain) }
        if let issuedAt = reply.issuedAt { out.key("issuedAt"); out.integer(issuedAt) }
        if let notAfter = reply.notAfter { out.key("notAfter"); out.integer(notAfter) }
        if let notBefore = reply.notBefore { out.key("notBefore"); out.integer(notBefore) }
        if let renewAt = reply.renewAt { out.key("renewAt"); out.raw(number(renewAt)) }
        out.key("requestId"); out.string(reply.requestId)
        if let retryAfter = reply.retryAfter { out.key("retryAfter"); out.integer(Int64(retryAfter)) }
        if let serial = reply.serial { out.key("serial"); out.string(serial) }
        out.key("status"); out.string(reply.status)
        if let trustBundle = reply.trustBundle { out.key("trustBundle"); out.string(trustBundle) }
        if let v = reply.v { out.key("v"); out.integer(Int64(v)) }
        out.close()
        return out.bytes
    }

    /// `WireCodec.encode(strings)` for an array of strings, without JSONEncoder.
    package static func encodeStrings(_ strings: [String]) -> [UInt8] {
        var out = JSONOutput(capacity: strings.reduce(2) { $0 + $1.utf8.count + 3 })
        out.bytes.append(UInt8(ascii: "["))
        for (index, string) in strings.enumerated() {
            if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
            out.string(string)
        }
        out.bytes.append(UInt8(ascii: "]"))
        return out.bytes
    }

    /// A Double as JSONEncoder writes it (its formatting is Foundation's own),
    /// remembered per value: replies carry one class policy's `renewAt`.
    private static func number(_ value: Double) -> [UInt8] {
        if let known = numberCache.withLock({ $0[value.bitPattern] }) { return known }
        let array = encode([value])
        let text = Array(array.dropFirst().dropLast())
        numberCache.withLock { cache in
            if cache.count < 64 { cache[value.bitPattern] = text }
        }
        return text
    }

    private static let numberCache = Mutex<[UInt64: [UInt8]]>([:])
}

private struct JSONOutput {
    var bytes: [UInt8] = []
    private var first = true

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func open() { bytes.append(UInt8(ascii: "{")) }
    mutating func close() { bytes.append(UInt8(ascii: "}")) }

    /// `"name":`, with the comma before every key but the first. Keys are plain ASCII.
    mutating func key(_ name: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func raw(_ text: [UInt8]) { bytes.append(contentsOf: text) }

    mutating func integer(_ value: Int64) { bytes.append(contentsOf: String(value).utf8) }

    /// A JSON string as JSONEncoder escapes it with `.withoutEscapingSlashes`:
    /// `"` and `\` backslashed, \b \f \n \r \t by name, other controls below
    /// 0x20 as \u00XX (lowercase hex); everything else (DEL, non-ASCII) as is.
    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                start = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
