import Foundation
import Shared

/// File names of the controller's PKI directory, made by `lanyard-controller init`.
package struct PKILayout: Sendable {
    package var directory: String

    package init(directory: String) { self.directory = directory }

    package func path(_ name: String) -> String { "\(directory)/\(name)" }

    package var rootCertificate: String { path("root-ca.pem") }
    package var rootKey: String { path("root-ca.key") }
    package var issuingCertificate: String { path("issuing-ca.pem") }
    package var issuingKey: String { path("issuing-ca.key") }
    /// Generation 1 is the CA `init` made; a CA rotation adds `issuing-ca-N`.
    package func issuingCertificate(generation: Int) -> String { generation == 1 ? issuingCertificate : path("issuing-ca-\(generation).pem") }
    package func issuingKey(generation: Int) -> String { generation == 1 ? issuingKey : path("issuing-ca-\(generation).key") }
    /// Root and issuing CA: the broker's `cafile` and every device's trust bundle.
    package var bundle: String { path("bundle.pem") }
    package var brokerCertificate: String { path("broker.pem") }
    package var brokerKey: String { path("broker.key") }
    package var controllerCertificate: String { path("controller.pem") }
    package var controllerKey: String { path("controller.key") }
    package var commandSignerCertificate: String { path("command-signer.pem") }
    package var commandSignerKey: String { path("command-signer.key") }
    /// The HTTPS admin API's server certificate (serverAuth, localhost and the broker names).
    package var adminAPICertificate: String { path("admin-api.pem") }
    package var adminAPIKey: String { path("admin-api.key") }
}

/// An issuing CA loaded from disk, with the bundle devices must trust.
package struct IssuingAuthority: Sendable {
    package var certificate: Certificate
    package var key: PrivateKey
    package var bundle: [Certificate]
    package var bundlePEM: String
    /// 1 for the CA `init` made, one more for each CA rotation.
    package var generation: Int = 1

    /// Generation 1 (the CA `init` made) and the bundle on disk.
    package static func load(_ layout: PKILayout) throws -> IssuingAuthority {
        try load(layout, generation: 1)
    }

    package static func load(_ layout: PKILayout, generation: Int) throws -> IssuingAuthority {
        let certPath = layout.issuingCertificate(generation: generation), keyPath = layout.issuingKey(generation: generation)
        let cert = try Certificate(pem: AtomicFile.readText(certPath))
        let key = try PrivateKey(pem: AtomicFile.readText(keyPath))
        guard key.publicKey == cert.publicKey else {
            throw WireError(.internal, "\(keyPath) does not match \(certPath)")
        }
        let bundlePEM = try AtomicFile.readText(layout.bundle)
        return IssuingAuthority(certificate: cert, key: key, bundle: try Certificate.chain(fromPEM: bundlePEM), bundlePEM: bundlePEM,
                                generation: generation)
    }
}
