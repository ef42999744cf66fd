import Foundation
import Testing

@testable import Agent
import Shared
import TestSupport

/// 2025-06-15T16:26:40Z: the agent tests' reference time.
let referenceTime = Date(timeIntervalSince1970: 1_750_004_800)
let testTrustDomain = "test.lanyard"

/// A throwaway PKI shaped like the one `PKIInitializer` makes (root CA, issuing
/// CA with pathlen 0, command signer with its EKU and SPIFFE id), built with
/// `CertificateIssuer` because the agent's tests cannot import the controller.
final class AgentTestPKI: Sendable {
    let trustDomain: String
    let rootKey: PrivateKey
    let root: Certificate
    let issuingKey: PrivateKey
    let issuing: Certificate
    let signerKey: PrivateKey
    let signer: Certificate
    let now: Date
    var bundle: [Certificate] { [root, issuing] }

    init(trustDomain: String = testTrustDomain, now: Date = referenceTime) throws {
        self.trustDomain = trustDomain
        self.now = now
        let year: TimeInterval = 365 * 86400
        rootKey = try PrivateKey.generateP256()
        var r = CertificateTemplate(commonName: "Test Root (\(trustDomain))", serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(10 * year))
        r.isCA = true
        r.pathLength = 1
        r.keyUsage = [.keyCertSign, .cRLSign]
        root = try CertificateIssuer.sign(r, subjectKey: rootKey.publicKey, issuer: nil, issuerKey: rootKey)
        issuingKey = try PrivateKey.generateP256()
        var i = CertificateTemplate(commonName: "Test Issuing (\(trustDomain))", serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(3 * year))
        i.isCA = true
        i.pathLength = 0
        i.keyUsage = [.keyCertSign, .cRLSign]
        issuing = try CertificateIssuer.sign(i, subjectKey: issuingKey.publicKey, issuer: root, issuerKey: rootKey)
        signerKey = try PrivateKey.generateP256()
        var s = CertificateTemplate(commonName: ServiceIdentity.commandSigner, serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(year))
        s.extendedKeyUsages = [ExtendedKeyUsage.lanyardCommandSigning]
        s.uriSANs = [ServiceIdentity.commandSignerURI(trustDomain: trustDomain)]
        signer = try CertificateIssuer.sign(s, subjectKey: signerKey.publicKey, issuer: issuing, issuerKey: issuingKey)
    }

    /// A device certificate as the controller issues it; returns leaf + issuing CA.
    func issueDevice(_ id: String, key: PrivateKey, issuedAt: Date? = nil, ttl: TimeInterval = 86400,
                     uri: String? = nil, eku: [String] = [ExtendedKeyUsage.clientAuth]) throws -> [Certificate] {
        let at = issuedAt ?? now
        var t = CertificateTemplate(commonName: id, serial: CertificateTemplate.randomSerial(),
                                    notBefore: at.addingTimeInterval(-300), notAfter: at.addingTimeInterval(ttl))
        t.keyUsage = [.digitalSignature]
        t.extendedKeyUsages = eku
        t.uriSANs = [uri ?? "spiffe://\(trustDomain)/device/\(id)"]
        return [try CertificateIssuer.sign(t, subjectKey: key.publicKey, issuer: issuing, issuerKey: issuingKey), issuing]
    }

    /// The command signer as the controller holds it.
    var commandSigner: CommandSigner { CommandSigner(key: signerKey, chain: [signer, issuing]) }
}

/// A private temporary directory removed when the value is released.
final class TempDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-at-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
        return file(name)
    }
}

struct MissingValue: Error, CustomStringConvertible {
    var what: String
    var description: String { "missing \(what)" }
}

/// Like `#require` for optionals, usable inside `#expect` (macros do not nest).
func unwrapped<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw MissingValue(what: what) }
    return value
}

func posixMode(_ path: String) throws -> Int {
    try unwrapped(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, "mode of \(path)")
}
