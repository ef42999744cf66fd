#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Protocol version carried in every message as `v` (absent means 1).
package let protocolVersion = 1

/// A request the controller can at least answer: its id and version, read
/// before the rest so a malformed request still gets a coded reply.
package struct RequestEnvelope: Decodable, Sendable {
    package var v: Int?
    package var requestId: String?
}

/// The largest request or reply payload either side accepts (bytes). A P-256
/// CSR is under 600 bytes and a chain of three certificates under 3 KiB.
package let maxMessageBytes = 16 * 1024

/// `lanyard/v1/enroll/{id}/req`: a device asks for its first certificate.
package struct EnrollRequest: Codable, Sendable, Equatable {
    package var v: Int? = protocolVersion
    package var requestId: String
    package var deviceId: DeviceID
    /// PKCS#10 CSR, PEM. The subject CN must be the device id.
    package var csr: String
    /// The one-time enrollment token printed by `lanyardctl device approve`;
    /// absent on a re-enrollment after expiry, which carries `reenrollment` instead.
    package var token: String?
    /// Proof of the expired credential's key (ReenrollmentProof).
    package var reenrollment: ReenrollmentProof?
    package var agentVersion: String
    /// Where the private key lives: `file` for now, `pkcs11` later.
    package var keyStorage: String? = "file"

    package init(requestId: String, deviceId: DeviceID, csr: String, token: String?, reenrollment: ReenrollmentProof? = nil, agentVersion: String) {
        self.requestId = requestId
        self.deviceId = deviceId
        self.csr = csr
        self.token = token
        self.reenrollment = reenrollment
        self.agentVersion = agentVersion
    }
}

/// `lanyard/v1/dev/{id}/renew/req`: a device with a valid certificate asks for the next one.
package struct RenewRequest: Codable, Sendable, Equatable {
    package var v: Int? = protocolVersion
    package var requestId: String
    package var csr: String
    /// `scheduled`, `forced` or `campaign`.
    package var reason: String
    package var campaignId: String?
    /// Serial (lowercase hex) of the certificate the device holds now.
    package var currentSerial: String

    package init(requestId: String, csr: String, reason: String, campaignId: String? = nil, currentSerial: String) {
        self.requestId = requestId
        self.csr = csr
        self.reason = reason
        self.campaignId = campaignId
        self.currentSerial = currentSerial
    }
}

/// The reply to an enrollment or renewal, on `…/res`.
package struct CertificateReply: Codable, Sendable, Equatable {
    package var v: Int? = protocolVersion
    package var requestId: String
    /// `issued` or `error`.
    package var status: String
    /// Leaf first, then the issuing CA (PEM).
    package var chain: String?
    /// Root and issuing CA certificates the device must trust (PEM).
    package var trustBundle: String?
    package var serial: String?
    /// Unix seconds, from the controller's clock.
    package var notBefore: Int64?
    package var notAfter: Int64?
    /// When the controller issued it (Unix seconds): lets the device see the
    /// certificate's intended lifetime (notBefore is backdated) and its own clock skew.
    package var issuedAt: Int64?
    /// Fraction of the lifetime after which the device renews (class policy).
    package var renewAt: Double?
    package var error: WireError?
    /// Seconds to wait before asking again (with `rate_limited`).
    package var retryAfter: Int?

    package static func failure(_ requestId: String, _ error: WireError, retryAfter: Int? = nil) -> CertificateReply {
        CertificateReply(requestId: requestId, status: "error", error: error, retryAfter: retryAfter)
    }

    package init(requestId: String, status: String, chain: String? = nil, trustBundle: String? = nil, serial: String? = nil,
                 notBefore: Int64? = nil, notAfter: Int64? = nil, issuedAt: Int64? = nil, renewAt: Double? = nil,
                 error: WireError? = nil, retryAfter: Int? = nil) {
        self.requestId = requestId
        self.status = status
        self.chain = chain
        self.trustBundle = trustBundle
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.issuedAt = issuedAt
        self.renewAt = renewAt
        self.error = error
        self.retryAfter = retryAfter
    }
}

/// `lanyard/v1/dev/{id}/ack`: the device's answer to a signed command.
package struct CommandAck: Codable, Sendable, Equatable {
    package var v: Int? = protocolVersion
    /// The command's `jti`, or empty when the command was too broken to read one.
    package var jti: String
    /// `done` or `refused`.
    package var outcome: String
    package var code: String?
    package var message: String?

    package init(jti: String, outcome: String, code: String? = nil, message: String? = nil) {
        self.jti = jti
        self.outcome = outcome
        self.code = code
        self.message = message
    }
}

/// `lanyard/v1/dev/{id}/state` (retained; the last will publishes `offline`).
package struct DeviceStateReport: Codable, Sendable, Equatable {
    package var v: Int? = protocolVersion
    /// `active`, `renewing`, `revoked`, `expired` or `offline`.
    package var state: String
    package var serial: String?
    package var notAfter: Int64?
    package var nextRenewal: Int64?
    package var agentVersion: String?
    package var time: Int64?

    package init(state: String, serial: String? = nil, notAfter: Int64? = nil, nextRenewal: Int64? = nil,
                 agentVersion: String? = nil, time: Int64? = nil) {
        self.state = state
        self.serial = serial
        self.notAfter = notAfter
        self.nextRenewal = nextRenewal
        self.agentVersion = agentVersion
        self.time = time
    }
}

/// An answer that can hold one entry per device (100,000 of them): encoded a
/// slice of entries at a time, because JSONEncoder builds its whole value tree
/// before writing a byte (the tree of 100,000 findings cost more memory than
/// the findings themselves). The bytes are the same JSON as the type's
/// Encodable conformance, which everything else (lanyardctl --json) uses.
package protocol LargeWireAnswer: Encodable {
    func wireEncoded() -> Data
}

extension WireCodec {
    /// `[a,b,...]` encoded `slice` elements at a time, appended to `out`. The
    /// buffer is sized from the first slice, so it is not regrown (a doubling
    /// holds the old and the new buffer at once).
    package static func appendArray<E: Encodable>(_ elements: [E], to out: inout Data, slice: Int = 1000) {
        out.append(UInt8(ascii: "["))
        var start = 0
        while start < elements.count {
            let end = min(start + slice, elements.count)
            let bytes = encodeData(Array(elements[start..<end]))  // "[...]"
            if start == 0 && end < elements.count {
                out.reserveCapacity(out.count + bytes.count * (elements.count / (end - start) + 1) * 11 / 10)
            }
            if start > 0 { out.append(UInt8(ascii: ",")) }
            out.append(bytes.dropFirst().dropLast())
            start = end
        }
        out.append(UInt8(ascii: "]"))
    }
}

/// JSON in and out of the wire, with the size limit applied before parsing.
package enum WireCodec {
    package static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        Array(encodeData(value))
    }

    /// The JSON as Data (what `AdminResponse.result` holds), without a copy to [UInt8] and back.
    package static func encodeData<T: Encodable>(_ value: T) -> Data {
        if let large = value as? any LargeWireAnswer { return large.wireEncoded() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding our own plain structs cannot fail.
        return (try? encoder.encode(value)) ?? Data()
    }

    package static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], limit: Int = maxMessageBytes) throws(WireError) -> T {
        guard bytes.count <= limit else { throw WireError(.badRequest, "message of \(bytes.count) bytes exceeds \(limit)") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw WireError(.badRequest, "malformed \(T.self): \(Self.describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .keyNotFound(let key, _): return "missing field \(key.stringValue)"
            case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
                let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
                return path.isEmpty ? ctx.debugDescription : "\(path): \(ctx.debugDescription)"
            @unknown default: return "undecodable"
            }
        }
        return "undecodable"
    }
}

/// Request ids: 128 random bits, hex. Unique enough to match replies to requests.
package func makeRequestID() -> String {
    Digest.hex(SecureRandom.bytes(16))
}
