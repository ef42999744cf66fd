#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// Checks a certificate reply before anything is written: it answers the
/// pending request, the certificate is for the pending key and this device,
/// chains to the trust bundle installed with the agent (never one sent in the
/// reply), and is valid now.
package enum ReplyValidator {
    package enum Outcome {
        case issued([Certificate])
        case refused(WireError, retryAfter: Int?)
        case invalid(String)
    }

    package static func check(_ reply: CertificateReply, pendingKey: PrivateKey, device: DeviceID, trust: [Certificate], now: Date) -> Outcome {
        if reply.status != "issued" {
            return .refused(reply.error ?? WireError(.internal, "error without detail"), retryAfter: reply.retryAfter)
        }
        guard let pem = reply.chain, let chain = try? Certificate.chain(fromPEM: pem), let leaf = chain.first else {
            return .invalid("reply has no readable certificate chain")
        }
        guard leaf.publicKey == pendingKey.publicKey else { return .invalid("certificate is for another key") }
        guard leaf.commonName == device.rawValue else { return .invalid("certificate is for \(leaf.commonName ?? "(no CN)")") }
        guard leaf.uriSANs.contains(where: { $0.hasPrefix("spiffe://") && $0.hasSuffix("/device/\(device.rawValue)") }) else {
            return .invalid("certificate lacks this device's SPIFFE id")
        }
        let verifier = ChainVerifier(trustAnchors: trust)
        var verdict = verifier.verify(leaf, intermediates: Array(chain.dropFirst()), at: now, requiredEKU: ExtendedKeyUsage.clientAuth)
        // A device clock that is off (no RTC, NTP not synced yet, a manual
        // step) must not stop renewal. The certificate is for the key made for
        // this very request, so it is fresh whatever this clock says: check it
        // at the controller's time of issuance instead, which must lie inside
        // its signed validity. The caller records the skew.
        if !verdict.ok, let issuedAt = reply.issuedAt {
            let controllerNow = Date(timeIntervalSince1970: TimeInterval(issuedAt))
            if leaf.notBefore <= controllerNow, controllerNow < leaf.notAfter {
                let atIssuance = verifier.verify(leaf, intermediates: Array(chain.dropFirst()), at: controllerNow, requiredEKU: ExtendedKeyUsage.clientAuth)
                if atIssuance.ok { verdict = atIssuance }
            }
        }
        guard verdict.ok else { return .invalid("certificate does not verify against the trust bundle: \(verdict.reason ?? "?")") }
        return .issued(chain)
    }
}
