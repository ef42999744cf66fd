#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// The `bundle` command: new trust anchors for a CA rotation.
///
/// `args["bundle"]` is the PEM of the new anchors; `args["replace"] = "true"`
/// drops the old ones, anything else absent keeps them (union), so a fleet can
/// trust old and new CA side by side until the operator says otherwise. The
/// result is written to `state_dir/bundle.pem` (the full effective set) and
/// used from then on, also after a restart, instead of the configured
/// `trust_bundle`.
package enum TrustBundleUpdate {
    /// Why a bundle was refused; acknowledged with code `bad_bundle`.
    package struct Refusal: Error, Sendable, Equatable {
        package var code: String { "bad_bundle" }
        package var message: String
    }

    package static let maximumPEMBytes = 65536
    package static let maximumAnchors = 16

    package static func path(in stateDirectory: String) -> String { "\(stateDirectory)/bundle.pem" }

    /// The anchors to use after the command, or why it is refused (`bad_bundle`).
    /// A replacement that would no longer verify this device's own certificate
    /// is refused: the agent could not even load its credential at the next start.
    package static func apply(args: [String: String]?, current: [Certificate], deviceChain: [Certificate]?,
                              now: Date) -> Result<[Certificate], Refusal> {
        func refuse(_ message: String) -> Result<[Certificate], Refusal> { .failure(Refusal(message: message)) }
        guard let pem = args?["bundle"], !pem.isEmpty else { return refuse("args.bundle (PEM) is missing") }
        guard pem.utf8.count <= maximumPEMBytes else { return refuse("bundle is larger than \(maximumPEMBytes) bytes") }
        let replace: Bool
        switch args?["replace"] {
        case nil, "false": replace = false
        case "true": replace = true
        case let other?: return refuse("args.replace must be true or false, not \(other.prefix(16))")
        }
        let anchors: [Certificate]
        do { anchors = try Certificate.chain(fromPEM: pem) } catch { return refuse("bundle does not parse: \(error)") }
        guard anchors.count <= maximumAnchors else { return refuse("more than \(maximumAnchors) certificates") }
        if let leaf = anchors.first(where: { !$0.isCA }) {
            return refuse("\(leaf.commonName ?? leaf.serialHex) is not a CA certificate")
        }
        let result = replace ? unique(anchors) : unique(current + anchors)
        if replace, let deviceChain, let leaf = deviceChain.first {
            let check = ChainVerifier(trustAnchors: result).verify(leaf, intermediates: Array(deviceChain.dropFirst()), at: now,
                                                                   requiredEKU: ExtendedKeyUsage.clientAuth)
            guard check.ok else { return refuse("replacement would not verify this device's certificate: \(check.reason ?? "?")") }
        }
        return .success(result)
    }

    private static func unique(_ certificates: [Certificate]) -> [Certificate] {
        var seen = Set<Certificate>()
        return certificates.filter { seen.insert($0).inserted }
    }

    /// Writes the effective anchors atomically, 0600.
    package static func save(_ anchors: [Certificate], stateDirectory: String) throws(FileError) {
        try AtomicFile.write(Certificate.pem(of: anchors), to: path(in: stateDirectory), mode: 0o600)
    }

    /// The installed bundle, if one was ever installed and still parses.
    package static func load(stateDirectory: String) -> [Certificate]? {
        guard let text = try? AtomicFile.readText(path(in: stateDirectory), limit: 1 << 20) else { return nil }
        return try? Certificate.chain(fromPEM: text)
    }
}

extension AgentRunner {
    /// `bundle`: validate, persist, then use. Nothing changes on a refusal.
    func installBundle(jti: String, args: [String: String]?) {
        switch TrustBundleUpdate.apply(args: args, current: trust, deviceChain: credential?.chain, now: Date()) {
        case .failure(let refusal):
            log.warning("trust bundle refused", ["reason": refusal.message])
            ack(CommandAck(jti: jti, outcome: "refused", code: refusal.code, message: refusal.message))
        case .success(let anchors):
            do {
                try TrustBundleUpdate.save(anchors, stateDirectory: configuration.stateDirectory)
            } catch {
                log.error("cannot write the trust bundle", ["error": "\(error)"])
                ack(CommandAck(jti: jti, outcome: "refused", code: "bad_bundle", message: "cannot write the bundle on the device"))
                return
            }
            trust = anchors
            log.notice("trust bundle installed", ["anchors": String(anchors.count), "replace": args?["replace"] ?? "false"])
            ack(CommandAck(jti: jti, outcome: "done"))
        }
    }
}

extension AgentRunner {
    /// The broker is verified against the installed bundle once one exists.
    /// libmosquitto re-reads the file on reconnect, so a later `bundle` takes
    /// effect at the next connection; the very first one (while the session
    /// still uses the configured file) at the next start of the agent.
    var brokerCAFile: String {
        let installed = TrustBundleUpdate.path(in: configuration.stateDirectory)
        return TrustBundleUpdate.load(stateDirectory: configuration.stateDirectory) == nil ? configuration.trustBundle : installed
    }
}
