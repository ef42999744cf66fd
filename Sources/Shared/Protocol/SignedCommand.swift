#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The claims of a command the controller sends to one device on
/// `lanyard/v1/dev/{id}/cmd`, as a JWS compact serialization (ES256).
package struct CommandClaims: Codable, Sendable, Equatable {
    /// The controller's SPIFFE id.
    package var iss: String
    /// The device id the command is for.
    package var sub: String
    /// Unique command id, echoed in the ack.
    package var jti: String
    /// Per-device sequence number; a device accepts only increasing values.
    package var seq: Int64
    package var iat: Int64
    package var exp: Int64
    /// `rotate`, `revoke`, `retire`, `bundle` or `ping`.
    package var cmd: String
    package var args: [String: String]?

    package init(iss: String, sub: String, jti: String, seq: Int64, iat: Int64, exp: Int64, cmd: String, args: [String: String]? = nil) {
        self.iss = iss
        self.sub = sub
        self.jti = jti
        self.seq = seq
        self.iat = iat
        self.exp = exp
        self.cmd = cmd
        self.args = args
    }

    package static let knownCommands: Set<String> = ["rotate", "revoke", "retire", "bundle", "ping"]
}

/// The JOSE header of a command. `x5c` carries the signer's chain (standard
/// base64 DER, RFC 7515 §4.1.6) so devices can check *who* signed.
package struct CommandHeader: Codable, Sendable, Equatable {
    package var alg: String
    package var typ: String
    package var x5c: [String]

    package static let type = "lanyard-cmd+jwt"
}

/// Signs commands with the controller's command-signing key.
package struct CommandSigner: Sendable {
    package let key: PrivateKey
    package let chain: [Certificate]

    package init(key: PrivateKey, chain: [Certificate]) {
        self.key = key
        self.chain = chain
    }

    package func sign(_ claims: CommandClaims) throws -> String {
        let header = CommandHeader(alg: "ES256", typ: CommandHeader.type, x5c: chain.map { Data($0.der).base64EncodedString() })
        return try CompactJWS.signES256(headerJSON: WireCodec.encode(header), payloadJSON: WireCodec.encode(claims), key: key)
    }
}

/// Why a device refused a command. Codes are sent back in the ack.
package struct CommandRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    package var code: String
    package var message: String
    /// The command id when it could be read, so the refusal can be acknowledged.
    package var jti: String

    package var description: String { "\(code): \(message)" }
}

/// Verifies commands on the device: signature, signer identity, subject,
/// freshness and order. Only a signer whose certificate chains to the trust
/// bundle *and* carries the command-signing EKU and SPIFFE id is accepted; a
/// valid device certificate is not enough.
package struct CommandVerifier: Sendable {
    package var trustAnchors: [Certificate]
    package var trustDomain: String
    package var device: DeviceID
    /// How far in the future `iat` may lie (controller clock ahead of ours).
    package var allowedSkew: Int64 = 300

    package init(trustAnchors: [Certificate], trustDomain: String, device: DeviceID) {
        self.trustAnchors = trustAnchors
        self.trustDomain = trustDomain
        self.device = device
    }

    package func verify(_ compact: String, now: Date, lastSeq: Int64) -> Result<CommandClaims, CommandRefusal> {
        func refuse(_ code: String, _ message: String, jti: String = "") -> Result<CommandClaims, CommandRefusal> {
            .failure(CommandRefusal(code: code, message: message, jti: jti))
        }
        let jws: CompactJWS
        do { jws = try CompactJWS(compact: compact) } catch { return refuse("malformed", "not a JWS: \(error)") }
        // Read the claims first only to learn the jti for the ack; nothing in
        // them is trusted before the signature checks out.
        let claims = try? WireCodec.decode(CommandClaims.self, from: jws.payloadJSON)
        let jti = claims?.jti ?? ""
        guard let header = try? WireCodec.decode(CommandHeader.self, from: jws.headerJSON) else {
            return refuse("malformed", "unreadable JWS header", jti: jti)
        }
        guard header.alg == "ES256" else { return refuse("bad_algorithm", "alg \(header.alg) is not ES256", jti: jti) }
        guard header.typ == CommandHeader.type else { return refuse("malformed", "typ \(header.typ) is not \(CommandHeader.type)", jti: jti) }
        guard (1...4).contains(header.x5c.count) else { return refuse("untrusted_signer", "x5c must hold 1 to 4 certificates", jti: jti) }
        var certs: [Certificate] = []
        for entry in header.x5c {
            guard entry.utf8.count <= 8192, let der = Data(base64Encoded: entry), let cert = try? Certificate(der: Array(der)) else {
                return refuse("untrusted_signer", "x5c entry is not a certificate", jti: jti)
            }
            certs.append(cert)
        }
        let signer = certs[0]
        let chainCheck = ChainVerifier(trustAnchors: trustAnchors).verify(
            signer, intermediates: Array(certs.dropFirst()), at: now, requiredEKU: ExtendedKeyUsage.lanyardCommandSigning)
        guard chainCheck.ok else {
            return refuse("untrusted_signer", "signer does not chain to the trust bundle as a command signer: \(chainCheck.reason ?? "?")", jti: jti)
        }
        guard signer.uriSANs.contains(ServiceIdentity.commandSignerURI(trustDomain: trustDomain)) else {
            return refuse("untrusted_signer", "signer is not \(ServiceIdentity.commandSignerURI(trustDomain: trustDomain))", jti: jti)
        }
        guard jws.verifyES256(with: signer.publicKey) else { return refuse("bad_signature", "signature does not verify", jti: jti) }
        guard let claims else { return refuse("malformed", "unreadable claims", jti: jti) }
        guard claims.sub == device.rawValue else { return refuse("wrong_subject", "command is for \(claims.sub)", jti: jti) }
        let nowSeconds = Int64(now.timeIntervalSince1970)
        guard claims.exp > nowSeconds else { return refuse("expired", "command expired at \(claims.exp)", jti: jti) }
        guard claims.iat <= nowSeconds + allowedSkew else { return refuse("not_yet_valid", "command issued in the future", jti: jti) }
        guard claims.seq > lastSeq else { return refuse("replayed", "seq \(claims.seq) is not above \(lastSeq)", jti: jti) }
        guard CommandClaims.knownCommands.contains(claims.cmd) else { return refuse("unknown_command", "unknown command \(claims.cmd)", jti: jti) }
        return .success(claims)
    }
}
