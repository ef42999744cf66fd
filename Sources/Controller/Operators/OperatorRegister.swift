import Foundation
import Shared

/// Who is calling the admin API, and with which roles.
package struct AdminActor: Sendable, Equatable {
    /// An operator's name (HTTPS), or `uid:1000(alice)` on the local socket.
    package var name: String
    package var roles: Set<OperatorRole>
    /// What the audit trail records: `operator:alice(ops)` or `uid:1000(alice)`.
    package var auditName: String

    package init(name: String, roles: Set<OperatorRole>, auditName: String) {
        self.name = name
        self.roles = roles
        self.auditName = auditName
    }

    /// A caller on the local Unix socket, authorised by its uid: every role
    /// except `business`, so that only a named business owner, over HTTPS,
    /// can accept risk for an exception.
    package static func local(_ uidName: String) -> AdminActor {
        AdminActor(name: uidName, roles: Set(OperatorRole.allCases).subtracting([.business]), auditName: uidName)
    }
}

/// Operators of the admin API: a name, roles and a bearer token of which only
/// the SHA-256 is stored. The token is shown once, when the operator is made.
package struct OperatorRegister: Sendable {
    package let store: Store
    package let clock: @Sendable () -> Date

    package init(store: Store, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.clock = clock
    }

    static let tokenPrefix = "lyo_"

    /// Names are what business owners are listed as on devices: 1–64 of letters, digits, `.`, `_`, `@`, `-`.
    static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x40 || $0 == 0x2D
        }
    }

    package func add(_ params: OperatorAddParams, createdBy: String) throws -> OperatorCreated {
        guard OperatorRegister.isValidName(params.name) else {
            throw WireError(.badRequest, "operator name must be 1 to 64 letters, digits, '.', '_', '@' or '-'")
        }
        var roles: [OperatorRole] = []
        for name in params.roles {
            guard let role = OperatorRole(rawValue: name) else {
                throw WireError(.badRequest, "unknown role '\(name.prefix(40))' (roles: \(OperatorRole.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !roles.contains(role) { roles.append(role) }
        }
        guard !roles.isEmpty else { throw WireError(.badRequest, "an operator needs at least one role") }
        roles.sort { $0.rawValue < $1.rawValue }
        let token = OperatorRegister.tokenPrefix + Base64URL.encode(SecureRandom.bytes(32))
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        try store.transaction { db in
            guard try db.query("SELECT 1 FROM operators WHERE name = ?", [.text(params.name)]).isEmpty else {
                throw WireError(.alreadyExists, "operator \(params.name) exists")
            }
            try db.query("INSERT INTO operators(name, roles, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                         [.text(params.name), .text(roles.map(\.rawValue).joined(separator: ",")), .text(OperatorRegister.hash(token)), .int(t),
                          .text(createdBy)])
            try db.audit(time: now, actor: createdBy, action: "operator.add", target: params.name, outcome: "ok",
                         detail: "roles=\(roles.map(\.rawValue).joined(separator: ","))")
        }
        return OperatorCreated(operatorInfo: OperatorView(name: params.name, roles: roles.map(\.rawValue), createdAt: t, createdBy: createdBy), token: token)
    }

    /// The operator holding `token`, or nil. The lookup is by the token's
    /// SHA-256, so its timing says nothing about the token.
    package func authenticate(bearer token: String) throws -> AdminActor? {
        guard token.hasPrefix(OperatorRegister.tokenPrefix), token.utf8.count <= 128 else { return nil }
        guard let row = try store.withConnection({ db in
            try db.query("SELECT name, roles FROM operators WHERE token_hash = ?", [.text(OperatorRegister.hash(token))]).first
        }), let name = row[0].text else { return nil }
        let roles = Set((row[1].text ?? "").split(separator: ",").compactMap { OperatorRole(rawValue: String($0)) })
        // The audit trail records who and in which roles: `operator:alice(auditor,ops)`.
        return AdminActor(name: name, roles: roles, auditName: "operator:\(name)(\(roles.map(\.rawValue).sorted().joined(separator: ",")))")
    }

    package func list() throws -> [OperatorView] {
        try store.withConnection { db in
            try db.query("SELECT name, roles, created_at, created_by FROM operators ORDER BY name").map {
                OperatorView(name: $0[0].text ?? "", roles: ($0[1].text ?? "").split(separator: ",").map(String.init), createdAt: $0[2].int ?? 0,
                             createdBy: $0[3].text ?? "")
            }
        }
    }

    static func hash(_ token: String) -> String { Digest.hex(Digest.sha256(Array(token.utf8))) }
}
