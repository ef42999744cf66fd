#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Re-enrollment after expiry (protocol.md 8.5). A device that was offline
/// past notAfter cannot renew over the operational listener (the broker
/// refuses its expired certificate), and its one-time token is spent. It
/// proves instead that it still holds the key of the *last* certificate the
/// controller issued to it: an ES256 JWS, signed with that key, binding the
/// new CSR, the request id and the device. The controller accepts it only for
/// the device's newest certificate, never revoked, and only if the class
/// allows re-enrollment and the certificate expired within the class's window
/// (step-ca's "renew after expiry", with the window and the newest-serial rule
/// as the limits on a stolen old key).
package struct ReenrollmentProof: Codable, Sendable, Equatable {
    /// The expired certificate (PEM, leaf first; the issuing CA may follow).
    package var chain: String
    /// Compact JWS over `Claims`, signed with the expired certificate's key.
    package var jws: String

    package init(chain: String, jws: String) {
        self.chain = chain
        self.jws = jws
    }

    package static let type = "lanyard-reenroll+jws"
    /// A proof older than this (or this far in the future) is refused: the
    /// agent signs a fresh one for every attempt.
    package static let maxAge: TimeInterval = 15 * 60

    package struct Claims: Codable, Sendable, Equatable {
        /// The device id.
        package var sub: String
        /// The request id of the enrollment request carrying the proof.
        package var rid: String
        /// SHA-256 (hex) of the CSR's PEM text exactly as sent.
        package var csr: String
        /// Unix seconds on the device's clock (judged with `maxAge` plus the clock skew already tolerated).
        package var iat: Int64
    }

    private struct Header: Codable {
        var alg: String
        var typ: String
    }

    package static func csrDigest(_ csrPEM: String) -> String { Digest.hex(Digest.sha256(Array(csrPEM.utf8))) }

    /// Signs a proof for `request` with the key of the expired credential.
    package static func make(device: DeviceID, requestID: String, csrPEM: String, expiredChain: [Certificate], key: PrivateKey,
                             now: Date) throws -> ReenrollmentProof {
        let claims = Claims(sub: device.rawValue, rid: requestID, csr: csrDigest(csrPEM), iat: Int64(now.timeIntervalSince1970))
        let jws = try CompactJWS.signES256(headerJSON: WireCodec.encode(Header(alg: "ES256", typ: type)),
                                           payloadJSON: WireCodec.encode(claims), key: key)
        return ReenrollmentProof(chain: Certificate.pem(of: expiredChain), jws: jws)
    }

    /// Checks the signature and the claims against the request; returns the
    /// expired leaf. What the leaf may be (issuer, newest serial, window) is
    /// the controller's register's business, not this function's.
    package func verify(device: DeviceID, requestID: String, csrPEM: String, now: Date, skewTolerance: TimeInterval) throws(WireError) -> Certificate {
        guard chain.utf8.count <= 16384, let leaf = try? Certificate.chain(fromPEM: chain).first else {
            throw WireError(.badReenrollment, "the previous certificate does not parse")
        }
        guard let parsed = try? CompactJWS(compact: jws, maxLength: 4096) else { throw WireError(.badReenrollment, "the proof is not a compact JWS") }
        guard let header = try? WireCodec.decode(Header.self, from: parsed.headerJSON), header.typ == ReenrollmentProof.type else {
            throw WireError(.badReenrollment, "the proof's header is not typ \(ReenrollmentProof.type)")
        }
        guard parsed.verifyES256(with: leaf.publicKey) else {
            throw WireError(.badReenrollment, "the proof is not signed by the previous certificate's key")
        }
        guard let claims = try? WireCodec.decode(Claims.self, from: parsed.payloadJSON) else { throw WireError(.badReenrollment, "the proof's claims do not parse") }
        guard claims.sub == device.rawValue, leaf.commonName == device.rawValue else {
            throw WireError(.identityMismatch, "the proof or the previous certificate is not for \(device)")
        }
        guard claims.rid == requestID, claims.csr == ReenrollmentProof.csrDigest(csrPEM) else {
            throw WireError(.badReenrollment, "the proof does not cover this request and CSR")
        }
        let age = now.timeIntervalSince1970 - TimeInterval(claims.iat)
        guard abs(age) <= ReenrollmentProof.maxAge + skewTolerance else {
            throw WireError(.badReenrollment, "the proof was signed \(Int(age)) s from now; at most \(Int(ReenrollmentProof.maxAge)) s is accepted")
        }
        return leaf
    }
}
