import Foundation
import Shared

/// `lanyard-controller operator add`: creates an operator straight in the
/// register file, for the first admin (nobody can call `operator.add` over
/// HTTPS before one exists). Whoever can write the register file is already
/// in control of the controller; the audit entry names their uid.
package enum LocalOperatorBootstrap {
    package static func add(configuration: ControllerConfiguration, name: String, roles: [String]) throws -> OperatorCreated {
        let store = try Store(path: configuration.databasePath)
        return try OperatorRegister(store: store, clock: { Date() }).add(OperatorAddParams(name: name, roles: roles), createdBy: localActor())
    }

    /// `lanyard-controller operator cert`: signs an existing operator's CSR with the issuing CA (needs its key, so it runs on the controller host).
    package static func certificate(configuration: ControllerConfiguration, name: String, csrPEM: String, days: Int) throws -> String {
        let store = try Store(path: configuration.databasePath)
        // The CA that issues now: after a CA rotation, generation 1's key is gone.
        let authority = try AuthorityRing.load(layout: PKILayout(directory: configuration.pkiDirectory), store: store).active
        return try OperatorCertificates(store: store, trustDomain: configuration.trustDomain, clock: { Date() })
            .issue(csrPEM: csrPEM, name: name, days: days, authority: authority, actor: localActor())
    }

    static func localActor() -> String {
        let uid = getuid()
        let user = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        return "local:uid:\(uid)" + (user.map { "(\($0))" } ?? "")
    }
}
