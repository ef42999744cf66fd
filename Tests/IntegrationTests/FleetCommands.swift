import Foundation
import Shared
import TestSupport

/// Signed commands, hooks and broker-side refusals for the agent lifecycle
/// suite. Commands are signed here, not by the controller (which does not
/// send `retire` or `bundle` yet), and published under the controller's
/// identity: the broker lets only that identity write a device's `cmd`
/// topic, and under `use_username_as_clientid` the connection would kick the
/// running controller, so it is stopped first.
extension Fleet {
    var commandSignerKey: String { "\(pki)/command-signer.key" }
    var commandSignerChain: String { "\(pki)/command-signer.pem" }

    struct Ack {
        var outcome: String?
        var code: String?
        var message: String?
        var raw: String
    }

    /// Signs `cmd` for `id` with the given key (default: the fleet's real
    /// command signer) and returns the device's ack, nil if none came.
    func sendCommand(_ id: String, _ cmd: String, args: [String: String]? = nil, seq: Int,
                     signerKey: String? = nil, signerChain: String? = nil, wait: Double = 8) throws -> Ack? {
        if controller != nil { stopController() }
        var extra: [String] = []
        if let args {
            let file = "\(directory)/args-\(UUID().uuidString.prefix(8)).json"
            try JSONSerialization.data(withJSONObject: args).write(to: URL(fileURLWithPath: file))
            extra = ["--args-file", file]
        }
        let sent = try peer(["forge", "--port", String(broker.operationalPort), "--cert", "\(pki)/controller.pem", "--key", "\(pki)/controller.key",
                             "--victim", id, "--signer-key", signerKey ?? commandSignerKey, "--signer-chain", signerChain ?? commandSignerChain,
                             "--cmd", cmd, "--seq", String(seq), "--wait", String(wait)] + extra)
        guard sent.json["connected"] as? Bool == true, let jti = sent.json["jti"] as? String else {
            throw SampleProblem("forge did not connect: \(sent.result.stdout) \(sent.result.stderr)")
        }
        let acks = sent.json["acks"] as? [[String: Any]] ?? []
        guard let ack = acks.first(where: { $0["jti"] as? String == jti }) else { return nil }
        return Ack(outcome: ack["outcome"] as? String, code: ack["code"] as? String, message: ack["message"] as? String, raw: "\(ack)")
    }

    /// Adds a `[hooks]` section to a registered device's agent.conf.
    func addHooks(_ id: String, onRenew: String? = nil, onRevoke: String? = nil, timeout: String = "5s") throws {
        let path = "\(agentDirectory(id))/agent.conf"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text += "\n\n[hooks]\n"
        if let onRenew { text += "on_renew = \(onRenew)\n" }
        if let onRevoke { text += "on_revoke = \(onRevoke)\n" }
        text += "timeout = \(timeout)\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Makes the broker refuse exactly these serials: a CRL from the issuing
    /// CA listing only them, then SIGHUP. The controller's own revocations
    /// are not involved (the register still has the device active).
    func refuseAtBroker(serials: [String]) throws {
        let issuer = try Certificate(pem: String(contentsOfFile: "\(pki)/issuing-ca.pem", encoding: .utf8))
        let key = try PrivateKey(pem: String(contentsOfFile: "\(pki)/issuing-ca.key", encoding: .utf8))
        let now = Date()
        let crl = try CertificateRevocationList.make(issuer: issuer, issuerKey: key, number: 1_000_000, thisUpdate: now.addingTimeInterval(-60),
                                                     nextUpdate: now.addingTimeInterval(3600),
                                                     revoked: serials.map { RevokedCertificate(serialHex: $0, revokedAt: now, reason: .superseded) })
        try crl.pem.write(toFile: self.crl, atomically: true, encoding: .utf8)
        try broker.reload()
    }

    /// A second, unrelated CA with a command signer of this fleet's trust
    /// domain: what a CA rotation would bring. Returns the paths of the root
    /// (PEM), the signer's key and the signer's chain.
    func makeForeignCommandSigner() throws -> (root: String, key: String, chain: String) {
        let dir = "\(directory)/foreign-ca"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let now = Date()
        let rootKey = try PrivateKey.generateP256()
        var r = CertificateTemplate(commonName: "Foreign Root", serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(86400))
        r.isCA = true
        r.pathLength = 1
        r.keyUsage = [.keyCertSign, .cRLSign]
        let root = try CertificateIssuer.sign(r, subjectKey: rootKey.publicKey, issuer: nil, issuerKey: rootKey)
        let signerKey = try PrivateKey.generateP256()
        var s = CertificateTemplate(commonName: ServiceIdentity.commandSigner, serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(86400))
        s.keyUsage = [.digitalSignature]
        s.extendedKeyUsages = [ExtendedKeyUsage.lanyardCommandSigning]
        s.uriSANs = [ServiceIdentity.commandSignerURI(trustDomain: trustDomain)]
        let signer = try CertificateIssuer.sign(s, subjectKey: signerKey.publicKey, issuer: root, issuerKey: rootKey)
        try root.pem.write(toFile: "\(dir)/root.pem", atomically: true, encoding: .utf8)
        try signerKey.pkcs8PEM().write(toFile: "\(dir)/signer.key", atomically: true, encoding: .utf8)
        try signer.pem.write(toFile: "\(dir)/signer.pem", atomically: true, encoding: .utf8)
        return ("\(dir)/root.pem", "\(dir)/signer.key", "\(dir)/signer.pem")
    }
}
