import Foundation
import Shared

/// Creates the controller's PKI: root CA, issuing CA, the broker's server
/// certificate, the controller's MQTT client certificate, the command
/// signer and the admin API's server certificate, all P-256 with keys 0600. Anything already on disk is kept, so a
/// second run changes nothing; a missing piece is made from what exists.
package struct PKIInitializer {
    package var layout: PKILayout
    package var trustDomain: String
    /// Extra DNS names for the broker certificate (always has localhost, 127.0.0.1, ::1).
    package var brokerNames: [String]
    package var now: Date

    package init(layout: PKILayout, trustDomain: String, brokerNames: [String] = [], now: Date = Date()) {
        self.layout = layout
        self.trustDomain = trustDomain
        self.brokerNames = brokerNames
        self.now = now
    }

    /// Trust domains follow SPIFFE: lowercase letters, digits, dots, dashes, underscores.
    package static func isValidTrustDomain(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 255 && name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "." || $0 == "-" || $0 == "_" }
    }

    /// Returns one line per file: created or kept.
    @discardableResult
    package func run() throws -> [String] {
        guard PKIInitializer.isValidTrustDomain(trustDomain) else {
            throw WireError(.badRequest, "trust domain '\(trustDomain)' must use a-z, 0-9, '.', '-', '_'")
        }
        try AtomicFile.makePrivateDirectory(layout.directory)
        var report: [String] = []

        func authority(_ name: String, years: Double, pathLength: Int) -> CertificateTemplate {
            PKIInitializer.authorityTemplate(name, trustDomain: trustDomain, years: years, pathLength: pathLength, now: now)
        }
        let root = try ensure(certificate: layout.rootCertificate, key: layout.rootKey, report: &report) { key in
            try CertificateIssuer.sign(authority("Lanyard Root CA", years: 10, pathLength: 1), subjectKey: key.publicKey, issuer: nil, issuerKey: key)
        }
        let issuing = try ensure(certificate: layout.issuingCertificate, key: layout.issuingKey, report: &report) { key in
            try CertificateIssuer.sign(authority(PKIInitializer.issuingCAName(generation: 1), years: 3, pathLength: 0), subjectKey: key.publicKey,
                                       issuer: root.cert, issuerKey: root.key)
        }
        if FileManager.default.fileExists(atPath: layout.bundle) {
            report.append("kept    \(layout.bundle)")
        } else {
            try AtomicFile.write(Certificate.pem(of: [root.cert, issuing.cert]), to: layout.bundle, mode: 0o644)
            report.append("created \(layout.bundle)")
        }

        for service in PKIInitializer.serviceCertificates(layout: layout, trustDomain: trustDomain, brokerNames: brokerNames) {
            _ = try ensure(certificate: service.certificate, key: service.key, chainWith: issuing.cert, report: &report) { key in
                try service.sign(subjectKey: key.publicKey, issuer: issuing.cert, issuerKey: issuing.key, now: now)
            }
        }
        return report
    }

    /// Loads a certificate and key, or makes both when neither exists. Half a
    /// pair on disk is an error: guessing would overwrite someone's key.
    private func ensure(certificate certPath: String, key keyPath: String, chainWith issuer: Certificate? = nil,
                        report: inout [String], make: (PrivateKey) throws -> Certificate) throws -> (cert: Certificate, key: PrivateKey) {
        let fm = FileManager.default
        switch (fm.fileExists(atPath: certPath), fm.fileExists(atPath: keyPath)) {
        case (true, true):
            report.append("kept    \(certPath)")
            return (try Certificate(pem: AtomicFile.readText(certPath)), try PrivateKey(pem: AtomicFile.readText(keyPath)))
        case (false, false):
            let key = try PrivateKey.generateP256()
            let cert = try make(key)
            try AtomicFile.write(key.pkcs8PEM(), to: keyPath, mode: 0o600)
            try AtomicFile.write(Certificate.pem(of: issuer.map { [cert, $0] } ?? [cert]), to: certPath, mode: 0o644)
            report.append("created \(certPath)")
            return (cert, key)
        default:
            throw WireError(.internal, "only one of \(certPath) and \(keyPath) exists; refusing to replace it")
        }
    }
}

/// One of the controller's service certificates (broker, admin API,
/// controller client, command signer): made by `init` and made again from
/// the new issuing CA by a CA rotation, so nothing still chains to a retired CA.
package struct ServiceCertificate: Sendable {
    package var certificate: String
    package var key: String
    package var commonName: String
    package var configure: @Sendable (inout CertificateTemplate) -> Void

    /// A year, backdated for clock skew like every Lanyard certificate.
    package func sign(subjectKey: PublicKey, issuer: Certificate, issuerKey: PrivateKey, now: Date) throws -> Certificate {
        var t = CertificateTemplate(commonName: commonName, serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(365 * 86400))
        t.keyUsage = [.digitalSignature]
        configure(&t)
        return try CertificateIssuer.sign(t, subjectKey: subjectKey, issuer: issuer, issuerKey: issuerKey)
    }
}

extension PKIInitializer {
    /// A CA certificate template: root (path length 1) or issuing CA (0), backdated five minutes.
    package static func authorityTemplate(_ name: String, trustDomain: String, years: Double, pathLength: Int, now: Date) -> CertificateTemplate {
        var t = CertificateTemplate(commonName: "\(name) (\(trustDomain))", serial: CertificateTemplate.randomSerial(),
                                    notBefore: now.addingTimeInterval(-300), notAfter: now.addingTimeInterval(years * 365 * 86400))
        t.organization = "Lanyard"
        t.isCA = true
        t.pathLength = pathLength
        t.keyUsage = [.keyCertSign, .cRLSign]
        return t
    }

    /// The name of generation N of the issuing CA.
    package static func issuingCAName(generation: Int) -> String { "Lanyard Issuing CA \(generation)" }

    package static func serviceCertificates(layout: PKILayout, trustDomain: String, brokerNames: [String]) -> [ServiceCertificate] {
        let names = ["localhost"] + brokerNames.filter { $0 != "localhost" }
        return [
            ServiceCertificate(certificate: layout.brokerCertificate, key: layout.brokerKey, commonName: "lanyard-broker") { t in
                t.keyUsage = [.digitalSignature, .keyEncipherment]
                t.extendedKeyUsages = [ExtendedKeyUsage.serverAuth]
                t.dnsSANs = names
                t.ipSANs = ["127.0.0.1", "::1"]
            },
            // The admin API is served on the controller host; same names as the broker.
            ServiceCertificate(certificate: layout.adminAPICertificate, key: layout.adminAPIKey, commonName: "lanyard-admin-api") { t in
                t.extendedKeyUsages = [ExtendedKeyUsage.serverAuth]
                t.dnsSANs = names
                t.ipSANs = ["127.0.0.1", "::1"]
            },
            ServiceCertificate(certificate: layout.controllerCertificate, key: layout.controllerKey, commonName: ServiceIdentity.controller) { t in
                t.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
                t.uriSANs = [ServiceIdentity.controllerURI(trustDomain: trustDomain)]
            },
            ServiceCertificate(certificate: layout.commandSignerCertificate, key: layout.commandSignerKey, commonName: ServiceIdentity.commandSigner) { t in
                t.extendedKeyUsages = [ExtendedKeyUsage.lanyardCommandSigning]
                t.uriSANs = [ServiceIdentity.commandSignerURI(trustDomain: trustDomain)]
            },
        ]
    }
}
