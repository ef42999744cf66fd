import Foundation
import Shared

/// The fleet register: devices with their class, owners and inventory
/// fields, and the lifecycle transitions operators make. Ownership is
/// explicit before production: a device whose class-required owners are not
/// all assigned cannot be approved nor enroll. Every change writes an audit
/// entry with the actor, the before and after, in the same transaction.
package struct DeviceRegister: Sendable {
    package let store: Store
    package let policies: ClassPolicies
    package let clock: @Sendable () -> Date

    /// - Parameter classes: the configuration's classes, seeding those the register lacks.
    package init(store: Store, classes: [String: DeviceClassPolicy], clock: @escaping @Sendable () -> Date) throws {
        self.store = store
        self.policies = try ClassPolicies(store: store, seed: classes, clock: clock)
        self.clock = clock
    }

    /// The current policy of every class.
    package var classes: [String: DeviceClassPolicy] { policies.all }

    package func add(_ params: DeviceAddParams, actor: String) throws -> DeviceView {
        let id = try DeviceRegister.validID(params.id)
        let owners = try DeviceRegister.validOwners(params.owners)
        let attributes = try DeviceAttributesValidator.validate(params.attributes ?? DeviceAttributes(), creating: true)
        let now = clock()
        try store.transaction { db in
            try insert(db, id: id, deviceClass: params.deviceClass, owners: owners, attributes: attributes, now: now, actor: actor)
        }
        return try show(id.rawValue)
    }

    /// Inserts one device (shared by `add` and the CSV import); the caller holds a transaction.
    func insert(_ db: SQLiteConnection, id: DeviceID, deviceClass: String, owners: [(OwnerRole, String)], attributes: DeviceAttributes,
                now: Date, actor: String) throws {
        guard let policy = policies.current(deviceClass)?.policy else {
            throw WireError(.badRequest, "unknown device class '\(deviceClass)' (known: \(classes.keys.sorted().joined(separator: ", ")))")
        }
        guard try db.query("SELECT 1 FROM devices WHERE id = ?", [.text(id.rawValue)]).isEmpty else {
            throw WireError(.alreadyExists, "device \(id) is already registered")
        }
        try DeviceAttributesValidator.checkReferences(db, attributes, policy: policy)
        try db.query("""
            INSERT INTO devices(id, class, state, created_at, vendor, model, hardware_serial, firmware, site, zone, tags, bootstrap_method)
            VALUES (?, ?, 'registered', ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(id.rawValue), .text(deviceClass), .int(Int64(now.timeIntervalSince1970))] + DeviceRegister.attributeValues(attributes))
        for (role, name) in owners {
            try db.query("INSERT INTO owners(device_id, role, owner) VALUES (?, ?, ?)", [.text(id.rawValue), .text(role.rawValue), .text(name)])
        }
        try db.audit(time: now, actor: actor, action: "device.add", target: id.rawValue, outcome: "ok",
                     detail: "class=\(deviceClass) owners=\(owners.map { "\($0.0.rawValue):\($0.1)" }.joined(separator: ",")) \(DeviceRegister.describe(attributes))")
    }

    /// Changes inventory fields; fields left nil keep their value.
    package func update(_ params: DeviceUpdateParams, actor: String) throws -> DeviceView {
        let id = try DeviceRegister.validID(params.id)
        let changes = try DeviceAttributesValidator.validate(params.attributes, creating: false)
        let now = clock()
        try store.transaction { db in try applyUpdate(db, id: id, changes: changes, now: now, actor: actor, reason: params.reason) }
        return try show(id.rawValue)
    }

    func applyUpdate(_ db: SQLiteConnection, id: DeviceID, changes: DeviceAttributes, now: Date, actor: String, reason: String?) throws {
        let before = try view(db, id: id.rawValue, withCertificates: false)
        guard let state = DeviceState(rawValue: before.state), state != .retired else {
            throw WireError(.invalidTransition, "device \(id) is retired; its record is closed")
        }
        let old = before.attributes ?? DeviceAttributes()
        var merged = old
        if let v = changes.vendor { merged.vendor = v.isEmpty ? nil : v }
        if let v = changes.model { merged.model = v.isEmpty ? nil : v }
        if let v = changes.hardwareSerial { merged.hardwareSerial = v.isEmpty ? nil : v }
        if let v = changes.firmware { merged.firmware = v.isEmpty ? nil : v }
        if let v = changes.site { merged.site = v.isEmpty ? nil : v }
        if let v = changes.zone { merged.zone = v.isEmpty ? nil : v }
        if let v = changes.tags { merged.tags = v }
        if let v = changes.bootstrapMethod { merged.bootstrapMethod = v }
        guard let policy = policies.current(before.deviceClass)?.policy else { throw WireError(.policyViolation, "class \(before.deviceClass) is not configured") }
        try DeviceAttributesValidator.checkReferences(db, merged, policy: policy)
        try db.query("""
            UPDATE devices SET vendor = ?, model = ?, hardware_serial = ?, firmware = ?, site = ?, zone = ?, tags = ?, bootstrap_method = ? WHERE id = ?
            """, DeviceRegister.attributeValues(merged) + [.text(id.rawValue)])
        // A firmware update or a vendor change is a lifecycle event that calls for a new key.
        if old.firmware != merged.firmware, old.firmware != nil { try markRotation(db, id, "firmware") }
        if old.vendor != merged.vendor, old.vendor != nil { try markRotation(db, id, "vendor") }
        try db.audit(time: now, actor: actor, action: "device.update", target: id.rawValue, outcome: "ok",
                     detail: "before={\(DeviceRegister.describe(old))} after={\(DeviceRegister.describe(merged))}\(reason.map { " reason=\(String($0.prefix(256)))" } ?? "")")
    }

    private func markRotation(_ db: SQLiteConnection, _ id: DeviceID, _ why: String) throws {
        try db.query("UPDATE devices SET rotation_required = ? WHERE id = ?", [.text(why), .text(id.rawValue)])
    }

    /// Moves a registered device to approved and returns a fresh one-time
    /// token; only the token's SHA-256 is stored. Approving again (before the
    /// device enrolls) replaces any unused token.
    package func approve(_ params: DeviceApproveParams, defaultTTL: Duration, actor: String) throws -> ApprovalResult {
        let device = try show(params.id)
        guard let state = DeviceState(rawValue: device.state) else { throw WireError(.internal, "unknown state \(device.state)") }
        if state == .revoked {
            // Re-enrollment after a revocation (a compromise): only where the class allows it. Its revoked certificates stay revoked.
            guard policies.current(device.deviceClass)?.policy.reapproveAfterRevocation == true else {
                throw WireError(.invalidTransition, "device \(params.id) is revoked; class \(device.deviceClass) does not allow approving it again "
                                + "(reapprove_after_revocation), so register a replacement (device replace)")
            }
        } else if state != .approved {
            _ = try Lifecycle.next(from: state, on: .approve)
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
            try db.audit(time: now, actor: actor, action: "device.approve", target: params.id, outcome: "ok",
                         detail: "before=\(state.rawValue) after=approved token_expires=\(expires)")
        }
        return ApprovalResult(id: params.id, token: token, expiresAt: expires)
    }

    /// `suspend`, `resume` or `retire`.
    package func transition(_ params: DeviceTransitionParams, actor: String) throws -> DeviceView {
        let id = try DeviceRegister.validID(params.id)
        guard let event = LifecycleEvent(rawValue: params.event), [.suspend, .resume, .retire].contains(event) else {
            throw WireError(.badRequest, "event must be suspend, resume or retire (approve, revoke and replace have their own calls)")
        }
        let reason = try DeviceRegister.validReason(params.reason)
        let now = clock()
        try store.transaction { db in
            let before = try currentState(db, id)
            let after = try Lifecycle.next(from: before, on: event)
            let t = Int64(now.timeIntervalSince1970)
            switch after {
            case .suspended: try db.query("UPDATE devices SET state = 'suspended', suspended_at = ? WHERE id = ?", [.int(t), .text(id.rawValue)])
            case .retired:
                // A retired device holds no valid certificate: revoked ones are fine, an unrevoked one is not.
                let live = try db.query("SELECT count(*) FROM certificates WHERE device_id = ? AND revoked_at IS NULL AND not_after > ?",
                                        [.text(id.rawValue), .int(t)]).first?.first?.int ?? 0
                guard live == 0 else { throw WireError(.policyViolation, "device \(id) still holds \(live) valid certificate(s)") }
                try db.query("UPDATE devices SET state = 'retired', retired_at = ? WHERE id = ?", [.int(t), .text(id.rawValue)])
            default: try db.query("UPDATE devices SET state = ?, suspended_at = NULL WHERE id = ?", [.text(after.rawValue), .text(id.rawValue)])
            }
            try db.audit(time: now, actor: actor, action: "device.\(event.rawValue)", target: id.rawValue, outcome: "ok",
                         detail: "before=\(before.rawValue) after=\(after.rawValue) reason=\(reason)")
        }
        return try show(id.rawValue)
    }

    /// New owners for the named roles. The device's credential must be
    /// rotated afterwards: the register marks it (`rotationRequired=transfer`).
    package func transfer(_ params: DeviceTransferParams, actor: String) throws -> DeviceView {
        let id = try DeviceRegister.validID(params.id)
        let owners = try DeviceRegister.validOwners(params.owners)
        guard !owners.isEmpty else { throw WireError(.badRequest, "transfer needs at least one ROLE=NAME") }
        let reason = try DeviceRegister.validReason(params.reason)
        let now = clock()
        try store.transaction { db in
            let state = try currentState(db, id)
            guard Lifecycle.transferable.contains(state) else {
                throw WireError(.invalidTransition, "transfer is not allowed from \(state.rawValue)")
            }
            let before = try view(db, id: id.rawValue, withCertificates: false).owners
            for (role, name) in owners {
                try db.query("INSERT INTO owners(device_id, role, owner) VALUES (?, ?, ?) ON CONFLICT(device_id, role) DO UPDATE SET owner = excluded.owner",
                             [.text(id.rawValue), .text(role.rawValue), .text(name)])
            }
            if state == .active || state == .suspended { try markRotation(db, id, "transfer") }
            let after = try view(db, id: id.rawValue, withCertificates: false).owners
            try db.audit(time: now, actor: actor, action: "device.transfer", target: id.rawValue, outcome: "ok",
                         detail: "before=\(DeviceRegister.describe(before)) after=\(DeviceRegister.describe(after)) reason=\(reason)")
        }
        return try show(id.rawValue)
    }

    /// Retires `old` (already revoked by the caller when it held certificates)
    /// and links it with `replacement`, which must be registered or approved.
    package func replace(_ params: DeviceReplaceParams, actor: String) throws -> DeviceView {
        let old = try DeviceRegister.validID(params.id)
        let new = try DeviceRegister.validID(params.replacement)
        guard old != new else { throw WireError(.badRequest, "a device cannot replace itself") }
        let reason = try DeviceRegister.validReason(params.reason)
        let now = clock()
        try store.transaction { db in
            let before = try currentState(db, old)
            _ = try Lifecycle.next(from: before, on: .replace)
            let newState = try currentState(db, new)
            guard newState == .registered || newState == .approved else {
                throw WireError(.invalidTransition, "the replacement \(new) is \(newState.rawValue); it must be registered or approved")
            }
            let t = Int64(now.timeIntervalSince1970)
            let live = try db.query("SELECT count(*) FROM certificates WHERE device_id = ? AND revoked_at IS NULL AND not_after > ?",
                                    [.text(old.rawValue), .int(t)]).first?.first?.int ?? 0
            guard live == 0 else { throw WireError(.policyViolation, "device \(old) still holds \(live) valid certificate(s); revoke it first") }
            try db.query("UPDATE devices SET state = 'retired', retired_at = ?, replaced_by = ? WHERE id = ?", [.int(t), .text(new.rawValue), .text(old.rawValue)])
            try db.query("UPDATE devices SET replaces = ? WHERE id = ?", [.text(old.rawValue), .text(new.rawValue)])
            try db.audit(time: now, actor: actor, action: "device.replace", target: old.rawValue, outcome: "ok",
                         detail: "before=\(before.rawValue) after=retired replacement=\(new) reason=\(reason)")
        }
        return try show(old.rawValue)
    }

    func currentState(_ db: SQLiteConnection, _ id: DeviceID) throws -> DeviceState {
        guard let text = try db.query("SELECT state FROM devices WHERE id = ?", [.text(id.rawValue)]).first?.first?.text else {
            throw WireError(.notFound, "no device \(id)")
        }
        guard let state = DeviceState(rawValue: text) else { throw WireError(.internal, "device \(id) has unknown state \(text)") }
        return state
    }

    package static func hashToken(_ token: String) -> String {
        Digest.hex(Digest.sha256(Array(token.utf8)))
    }

    /// Every device, in pages of 5,000 read in one snapshot (three indexed
    /// queries a page, not one per device): a 100,000-device register lists
    /// in seconds without holding every owner and certificate row at once.
    /// Callers that can work a page at a time use `forEachPage`.
    package func list() throws -> [DeviceView] {
        var all: [DeviceView] = []
        try forEachPage { all += $0 }
        return all
    }

    package func show(_ id: String) throws -> DeviceView {
        try store.withConnection { db in try view(db, id: id, withCertificates: true) }
    }

    static let deviceColumns = """
        SELECT id, class, state, created_at, revoked_at, revocation_reason, last_seen, reported_state,
               vendor, model, hardware_serial, firmware, site, zone, tags, bootstrap_method, retired_at, replaces, replaced_by, rotation_required
        FROM devices
        """

    package func view(_ db: SQLiteConnection, id: String, withCertificates: Bool) throws -> DeviceView {
        guard let row = try db.query(DeviceRegister.deviceColumns + " WHERE id = ?", [.text(id)]).first else {
            throw WireError(.notFound, "no device \(id)")
        }
        var owners: [String: String] = [:]
        for o in try db.query("SELECT role, owner FROM owners WHERE device_id = ?", [.text(id)]) {
            owners[o[0].text ?? ""] = o[1].text ?? ""
        }
        let certs = try db.query("""
            SELECT serial, not_after, issuer, not_before, issued_at, kind, key_fingerprint, revoked_at FROM certificates
            WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC
            """ + (withCertificates ? "" : " LIMIT 1"), [.text(id)])
        var view = makeView(row, owners: owners, latestCertificate: certs.first)
        if withCertificates {
            view.certificates = certs.map {
                CertificateView(serial: $0[0].text ?? "", notBefore: $0[3].int ?? 0, notAfter: $0[1].int ?? 0, issuedAt: $0[4].int ?? 0,
                                kind: $0[5].text ?? "", keyFingerprint: $0[6].text ?? "", revokedAt: $0[7].int)
            }
        }
        return view
    }

    /// - Parameter latestCertificate: serial, not_after, issuer, not_before, issued_at of the current certificate.
    func makeView(_ row: SQLRow, owners: [String: String], latestCertificate cert: SQLRow?) -> DeviceView {
        let className = row[1].text ?? ""
        let required = policies.current(className)?.policy.requiredOwners ?? OwnerRole.allCases
        var view = DeviceView(id: row[0].text ?? "", deviceClass: className, state: row[2].text ?? "", owners: owners,
                              missingOwners: required.map(\.rawValue).filter { owners[$0] == nil }, createdAt: row[3].int ?? 0)
        view.revokedAt = row[4].int
        view.revocationReason = row[5].text
        view.lastSeen = row[6].int
        view.reportedState = row[7].text
        let tags = (row[14].text ?? "").split(separator: ",").map(String.init)
        view.attributes = DeviceAttributes(vendor: row[8].text, model: row[9].text, hardwareSerial: row[10].text, firmware: row[11].text,
                                           site: row[12].text, zone: row[13].text, tags: tags, bootstrapMethod: row[15].text)
        view.retiredAt = row[16].int
        view.replaces = row[17].text
        view.replacedBy = row[18].text
        view.rotationRequired = row[19].text
        if let cert {
            view.serial = cert[0].text
            view.notAfter = cert[1].int
            view.issuer = cert[2].text
            view.issuedAt = cert.count > 4 ? cert[4].int : nil
        }
        return view
    }

    /// Records what a device reported on its state topic.
    package func recordState(_ id: DeviceID, reported: String) throws {
        try store.transaction { db in try recordState(db, id, reported: reported) }
    }

    /// `recordState` inside the caller's transaction.
    package func recordState(_ db: SQLiteConnection, _ id: DeviceID, reported: String) throws {
        try db.query("UPDATE devices SET last_seen = ?, reported_state = ? WHERE id = ?",
                     [.int(Int64(clock().timeIntervalSince1970)), .text(String(reported.prefix(32))), .text(id.rawValue)])
    }

    // MARK: input checks

    static func validID(_ text: String) throws -> DeviceID {
        guard let id = DeviceID(text) else {
            throw WireError(.badRequest, "device id '\(text.prefix(80))' must match ^[a-z0-9][a-z0-9.-]{0,62}$")
        }
        guard !id.isReserved else { throw WireError(.badRequest, "ids starting with '\(DeviceID.reservedPrefix)' are reserved for Lanyard's services") }
        return id
    }

    static func validOwners(_ owners: [String: String]) throws -> [(OwnerRole, String)] {
        var result: [(OwnerRole, String)] = []
        for (roleName, owner) in owners.sorted(by: { $0.key < $1.key }) {
            guard let role = OwnerRole(rawValue: roleName) else {
                throw WireError(.badRequest, "unknown owner role '\(roleName.prefix(40))' (roles: \(OwnerRole.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let name = owner.trimmed()
            guard !name.isEmpty, name.count <= 128, !name.contains(where: { $0.isNewline || $0 == "," }) else {
                throw WireError(.badRequest, "owner for role \(roleName) must be 1 to 128 characters on one line, without commas")
            }
            result.append((role, name))
        }
        return result
    }

    static func validReason(_ reason: String?) throws -> String {
        guard let reason else { return "-" }
        guard reason.count <= 256, !reason.contains(where: \.isNewline) else { throw WireError(.badRequest, "reason must be one line of at most 256 characters") }
        return reason
    }

    static func attributeValues(_ a: DeviceAttributes) -> [SQLValue] {
        func text(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
        return [text(a.vendor), text(a.model), text(a.hardwareSerial), text(a.firmware), text(a.site), text(a.zone),
                .text((a.tags ?? []).joined(separator: ",")), .text(a.bootstrapMethod ?? "token")]
    }

    static func describe(_ a: DeviceAttributes) -> String {
        [("vendor", a.vendor), ("model", a.model), ("hw_serial", a.hardwareSerial), ("firmware", a.firmware), ("site", a.site), ("zone", a.zone),
         ("tags", a.tags?.joined(separator: "|")), ("bootstrap", a.bootstrapMethod)]
            .compactMap { k, v in v.map { "\(k)=\($0)" } }.joined(separator: " ")
    }

    static func describe(_ owners: [String: String]) -> String {
        owners.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }
}
