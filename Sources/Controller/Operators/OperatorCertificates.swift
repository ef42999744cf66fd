import Foundation
import Shared

/// Client certificates for operators, the alternative to a bearer token:
/// issued by the controller's issuing CA from the operator's own CSR (the key
/// never leaves the operator), subject CN the operator's name, URI SAN
/// `spiffe://<trust-domain>/operator/<name>`, clientAuth only. The API maps
/// a verified certificate to the operator of that name, so removing the
/// operator also ends what its certificate can do.
package struct OperatorCertificates: Sendable {
    package let store: Store
    package let trustDomain: String
    package let clock: @Sendable () -> Date

    package init(store: Store, trustDomain: String, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.trustDomain = trustDomain
        self.clock = clock
    }

    /// Signs `csrPEM` for an existing operator; the chain (leaf + issuing CA) as PEM.
    package func issue(csrPEM: String, name: String, days: Int, authority: IssuingAuthority, actor: String) throws -> String {
        guard (1...397).contains(days) else { throw WireError(.badRequest, "days must be 1 to 397") }
        guard csrPEM.utf8.count <= 8192, let csr = try? CertificateSigningRequest(pem: csrPEM), csr.verifySignature() else {
            throw WireError(.badCSR, "the CSR does not parse or its signature does not verify")
        }
        guard csr.commonName == name else { throw WireError(.identityMismatch, "the CSR's CN \(csr.commonName ?? "(none)") is not \(name)") }
        let now = clock()
        return try store.transaction { db in
            guard try !db.query("SELECT 1 FROM operators WHERE name = ?", [.text(name)]).isEmpty else { throw WireError(.notFound, "no operator \(name)") }
            var t = CertificateTemplate(commonName: name, serial: CertificateTemplate.randomSerial(), notBefore: now.addingTimeInterval(-300),
                                        notAfter: now.addingTimeInterval(TimeInterval(days) * 86400))
            t.keyUsage = [.digitalSignature]
            t.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
            t.uriSANs = [ServiceIdentity.operatorURIPrefix(trustDomain: trustDomain) + name]
            let cert = try CertificateIssuer.sign(t, subjectKey: csr.publicKey, issuer: authority.certificate, issuerKey: authority.key)
            try db.audit(time: now, actor: actor, action: "operator.certificate", target: name, outcome: "ok",
                         detail: "serial=\(cert.serialHex) not_after=\(Int64(cert.notAfter.timeIntervalSince1970))")
            return Certificate.pem(of: [cert, authority.certificate])
        }
    }

    /// Whether `cert` comes from an issuing CA a rotation has retired (docs/ca-rotation.md).
    func issuedByRetiredCA(_ cert: Certificate) throws -> Bool {
        guard let issuer = cert.issuerCommonName else { return true }
        return try store.withConnection { db in
            try !db.query("SELECT 1 FROM ca_generations WHERE common_name = ? AND state = 'retired'", [.text(issuer)]).isEmpty
        }
    }

    /// The operator a verified client certificate names, or nil (another
    /// kind of certificate from the same CA, a device's for one, or a removed operator).
    package func authenticate(der: [UInt8], operators: OperatorRegister) throws -> AdminActor? {
        guard let cert = try? Certificate(der: der), cert.extendedKeyUsages.contains(ExtendedKeyUsage.clientAuth) else { return nil }
        let prefix = ServiceIdentity.operatorURIPrefix(trustDomain: trustDomain)
        guard cert.uriSANs.count == 1, let uri = cert.uriSANs.first, uri.hasPrefix(prefix) else { return nil }
        let name = String(uri.dropFirst(prefix.count))
        guard OperatorRegister.isValidName(name), cert.commonName == name, let found = try operators.find(name) else { return nil }
        // TLS verified the chain up to the root, which still vouches for a retired issuing CA: refuse what that CA issued.
        guard try !issuedByRetiredCA(cert) else { return nil }
        return found
    }
}
