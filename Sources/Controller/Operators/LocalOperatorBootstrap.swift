import Foundation
import Shared

/// `lanyard-controller operator add`: creates an operator straight in the
/// register file, for the first admin (nobody can call `operator.add` over
/// HTTPS before one exists). Whoever can write the register file is already
/// in control of the controller; the audit entry names their uid.
package enum LocalOperatorBootstrap {
    package static func add(configuration: ControllerConfiguration, name: String, roles: [String]) throws -> OperatorCreated {
        let store = try Store(path: configuration.databasePath)
        let uid = getuid()
        let user = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        let actor = "local:uid:\(uid)" + (user.map { "(\($0))" } ?? "")
        return try OperatorRegister(store: store, clock: { Date() }).add(OperatorAddParams(name: name, roles: roles), createdBy: actor)
    }
}
