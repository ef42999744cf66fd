import Foundation
import Shared

/// Lifecycle states of a device in this slice of the register.
package enum DeviceState: String, Sendable {
    case registered, approved, active, revoked
}

/// The fleet register: devices, their class and owners, approval with a
/// one-time enrollment token. Ownership is explicit before production: a
/// device whose class-required owners are not all assigned cannot be approved
/// nor enroll.
package struct DeviceRegister: Sendable {
    package let store: Store
    package let classes: [String: DeviceClassPolicy]
    package let clock: @Sendable () -> Date

    package init(store: Store, classes: [String: DeviceClassPolicy], clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.classes = classes
        self.clock = clock
    }

    package func add(_ params: DeviceAddParams, actor: String) throws -> DeviceView {
        guard let id = DeviceID(params.id) else {
            throw WireError(.badRequest, "device id '\(params.id)' must match ^[a-z0-9][a-z0-9.-]{0,62}$")
        }
        guard !id.isReserved else { throw WireError(.badRequest, "ids starting with '\(DeviceID.reservedPrefix)' are reserved for Lanyard's services") }
        guard classes[params.deviceClass] != nil else {
            throw WireError(.badRequest, "unknown device class '\(params.deviceClass)' (known: \(classes.keys.sorted().joined(separator: ", ")))")
        }
        var owners: [(OwnerRole, String)] = []
        for (roleName, owner) in params.owners.sorted(by: { $0.key < $1.key }) {
            guard let role = OwnerRole(rawValue: roleName) else {
                throw WireError(.badRequest, "unknown owner role '\(roleName)' (roles: \(OwnerRole.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let name = owner.trimmed()
            guard !name.isEmpty, name.count <= 128, !name.contains(where: { $0.isNewline }) else {
                throw WireError(.badRequest, "owner for role \(roleName) must be 1 to 128 characters on one line")
            }
            owners.append((role, name))
        }
        let now = clock()
        try store.transaction { db in
            guard try db.query("SELECT 1 FROM devices WHERE id = ?", [.text(id.rawValue)]).isEmpty else {
                throw WireError(.alreadyExists, "device \(id) is already registered")
            }
            try db.query("INSERT INTO devices(id, class, state, created_at) VALUES (?, ?, 'registered', ?)",
                         [.text(id.rawValue), .text(params.deviceClass), .int(Int64(now.timeIntervalSince1970))])
            for (role, name) in owners {
                try db.query("INSERT INTO owners(device_id, role, owner) VALUES (?, ?, ?)", [.text(id.rawValue), .text(role.rawValue), .text(name)])
            }
            try db.audit(time: now, actor: actor, action: "device.add", target: id.rawValue, outcome: "ok",
                         detail: "class=\(params.deviceClass) owners=\(owners.map { "\($0.0.rawValue):\($0.1)" }.joined(separator: ","))")
        }
        return try show(id.rawValue)
    }

    /// Moves a registered device to approved and returns a fresh one-time
    /// token; only the token's SHA-256 is stored. Approving again (before the
    /// device enrolls) replaces any unused token.
    package func approve(_ params: DeviceApproveParams, defaultTTL: Duration, actor: String) throws -> ApprovalResult {
        let device = try show(params.id)
        guard device.state == DeviceState.registered.rawValue || device.state == DeviceState.approved.rawValue else {
            throw WireError(.invalidTransition, "device \(params.id) is \(device.state); only registered devices can be approved")
        }
        guard device.missingOwners.isEmpty else {
            throw WireError(.ownersMissing, "device \(params.id) has no owner for: \(device.missingOwners.joined(separator: ", "))")
        }
        let ttl = params.tokenTTL.map { Duration.seconds($0) } ?? defaultTTL
        guard ttl >= .seconds(60), ttl <= .seconds(30 * 86400) else {
            throw WireError(.badRequest, "token lifetime must be between 60 s and 30 days")
        }
        let token = "lyt_" + Base64URL.encode(SecureRandom.bytes(32))
        let now = clock()
        let expires = Int64(now.timeIntervalSince1970) + ttl.seconds
        try store.transaction { db in
            try db.query("DELETE FROM enrollment_tokens WHERE device_id = ? AND used_at IS NULL", [.text(params.id)])
            try db.query("INSERT INTO enrollment_tokens(token_hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                         [.text(DeviceRegister.hashToken(token)), .text(params.id), .int(Int64(now.timeIntervalSince1970)), .int(expires)])
            try db.query("UPDATE devices SET state = 'approved', approved_at = ? WHERE id = ?", [.int(Int64(now.timeIntervalSince1970)), .text(params.id)])
            try db.audit(time: now, actor: actor, action: "device.approve", target: params.id, outcome: "ok", detail: "token_expires=\(expires)")
        }
        return ApprovalResult(id: params.id, token: token, expiresAt: expires)
    }

    package static func hashToken(_ token: String) -> String {
        Digest.hex(Digest.sha256(Array(token.utf8)))
    }

    package func list() throws -> [DeviceView] {
        try store.withConnection { db in
            let ids = try db.query("SELECT id FROM devices ORDER BY id").compactMap { $0[0].text }
            return try ids.map { try view(db, id: $0, withCertificates: false) }
        }
    }

    package func show(_ id: String) throws -> DeviceView {
        try store.withConnection { db in try view(db, id: id, withCertificates: true) }
    }

    package func view(_ db: SQLiteConnection, id: String, withCertificates: Bool) throws -> DeviceView {
        guard let row = try db.query("""
            SELECT id, class, state, created_at, revoked_at, revocation_reason, last_seen, reported_state FROM devices WHERE id = ?
            """, [.text(id)]).first else {
            throw WireError(.notFound, "no device \(id)")
        }
        var owners: [String: String] = [:]
        for o in try db.query("SELECT role, owner FROM owners WHERE device_id = ?", [.text(id)]) {
            owners[o[0].text ?? ""] = o[1].text ?? ""
        }
        let className = row[1].text ?? ""
        let required = classes[className]?.requiredOwners ?? OwnerRole.allCases
        var view = DeviceView(id: id, deviceClass: className, state: row[2].text ?? "", owners: owners,
                              missingOwners: required.map(\.rawValue).filter { owners[$0] == nil }, createdAt: row[3].int ?? 0)
        view.revokedAt = row[4].int
        view.revocationReason = row[5].text
        view.lastSeen = row[6].int
        view.reportedState = row[7].text
        let certs = try db.query("""
            SELECT serial, not_before, not_after, issued_at, kind, key_fingerprint, revoked_at FROM certificates
            WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC
            """ + (withCertificates ? "" : " LIMIT 1"), [.text(id)])
        if let latest = certs.first {
            view.serial = latest[0].text
            view.notAfter = latest[2].int
        }
        if withCertificates {
            view.certificates = certs.map {
                CertificateView(serial: $0[0].text ?? "", notBefore: $0[1].int ?? 0, notAfter: $0[2].int ?? 0, issuedAt: $0[3].int ?? 0,
                                kind: $0[4].text ?? "", keyFingerprint: $0[5].text ?? "", revokedAt: $0[6].int)
            }
        }
        return view
    }

    /// Records what a device reported on its state topic.
    package func recordState(_ id: DeviceID, reported: String) throws {
        _ = try store.withConnection { db in
            try db.query("UPDATE devices SET last_seen = ?, reported_state = ? WHERE id = ?",
                         [.int(Int64(clock().timeIntervalSince1970)), .text(String(reported.prefix(32))), .text(id.rawValue)])
        }
    }
}
