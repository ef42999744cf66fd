import Foundation
import Shared

/// Exceptions to a class policy: requested by operations with a
/// justification, compensating controls and an expiry no later than the
/// class allows; approved or rejected only by the business owner of every
/// device it covers, who cannot be the requester. Only an approved exception
/// before its expiry has any effect (`active`).
package struct ExceptionRegister: Sendable {
    package let store: Store
    package let register: DeviceRegister
    package let clock: @Sendable () -> Date

    package init(store: Store, register: DeviceRegister, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.register = register
        self.clock = clock
    }

    /// Controls an exception may relax, and what each does while active.
    package enum Control: String, CaseIterable, Sendable {
        /// A renewal may keep the current key although the class rotates keys.
        case keyReuse = "key_reuse"
        /// Certificates get the exception's `ttl`, above the class maximum.
        case ttlAboveMax = "ttl_above_max"
    }

    package func request(_ p: ExceptionRequestParams, requester: String, auditActor: String) throws -> ExceptionView {
        guard let control = Control(rawValue: p.control) else {
            throw WireError(.badRequest, "control must be one of \(Control.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for (name, text, limit) in [("justification", p.justification, 1000), ("compensatingControls", p.compensatingControls, 1000)] {
            guard !text.trimmed().isEmpty, text.count <= limit else { throw WireError(.badRequest, "\(name) is required (at most \(limit) characters)") }
        }
        if control == .ttlAboveMax {
            guard let ttl = p.ttl, ttl >= 10, ttl <= 825 * 86400 else { throw WireError(.badRequest, "ttl_above_max needs ttl (10 s to 825 days)") }
        } else if p.ttl != nil {
            throw WireError(.badRequest, "ttl only goes with ttl_above_max")
        }
        guard (p.device == nil) != (p.selector == nil) else { throw WireError(.badRequest, "name either a device or a selector") }
        if let selector = p.selector { _ = try Selector(selector) }
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        return try store.transaction { db in
            let covered = try devices(db, device: p.device, selector: p.selector)
            guard !covered.isEmpty else { throw WireError(.notFound, "the exception covers no device") }
            let maxDuration = covered.compactMap { register.policies.current($0.deviceClass)?.policy.exceptionMaxDuration.seconds }.min() ?? 0
            guard p.expiresAt > t else { throw WireError(.badRequest, "expiresAt is in the past") }
            guard p.expiresAt - t <= maxDuration else {
                throw WireError(.policyViolation, "expiry is \((p.expiresAt - t) / 86400) days away; the class allows at most \(maxDuration / 86400) days")
            }
            try db.query("""
                INSERT INTO exceptions(device_id, selector, control, ttl, justification, compensating, expires_at, requested_by, requested_at, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')
                """, [p.device.map { .text($0) } ?? .null, p.selector.map { .text($0) } ?? .null, .text(control.rawValue), p.ttl.map { .int($0) } ?? .null,
                      .text(p.justification), .text(p.compensatingControls), .int(p.expiresAt), .text(requester), .int(t)])
            let id = try db.query("SELECT last_insert_rowid()").first?.first?.int ?? 0
            try db.audit(time: now, actor: auditActor, action: "exception.request", target: p.device ?? p.selector ?? "-", outcome: "ok",
                         detail: "id=\(id) control=\(control.rawValue) expires=\(p.expiresAt) covers=\(covered.count)")
            return try view(db, id: id, now: t)
        }
    }

    /// Approves or rejects. The decider must be the business owner of every
    /// device the exception covers and must not be its requester.
    package func decide(_ p: ExceptionDecideParams, decider: String, auditActor: String) throws -> ExceptionView {
        guard p.decision == "approve" || p.decision == "reject" else { throw WireError(.badRequest, "decision must be approve or reject") }
        let reason = try DeviceRegister.validReason(p.reason)
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        return try store.transaction { db in
            let current = try view(db, id: p.id, now: t)
            guard current.status == "pending" else { throw WireError(.invalidTransition, "exception \(p.id) is \(current.status), not pending") }
            guard current.requestedBy != decider else {
                throw WireError(.separationOfDuties, "\(decider) requested exception \(p.id) and cannot decide it")
            }
            let covered = try devices(db, device: current.device, selector: current.selector)
            guard !covered.isEmpty else { throw WireError(.notFound, "the exception covers no device any more") }
            let notOwned = covered.filter { $0.owners[OwnerRole.business.rawValue] != decider }.map(\.id)
            guard notOwned.isEmpty else {
                throw WireError(.forbidden, "\(decider) is not the business owner of: \(notOwned.prefix(10).joined(separator: ", "))")
            }
            let status = p.decision == "approve" ? "approved" : "rejected"
            try db.query("UPDATE exceptions SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ? WHERE id = ?",
                         [.text(status), .text(decider), .int(t), .text(reason), .int(p.id)])
            try db.audit(time: now, actor: auditActor, action: "exception.\(p.decision)", target: current.device ?? current.selector ?? "-", outcome: "ok",
                         detail: "id=\(p.id) before=pending after=\(status) reason=\(reason)")
            return try view(db, id: p.id, now: t)
        }
    }

    package func list() throws -> [ExceptionView] {
        let t = Int64(clock().timeIntervalSince1970)
        return try store.withConnection { db in
            try db.query("SELECT id FROM exceptions ORDER BY id").compactMap { $0[0].int }.map { try view(db, id: $0, now: t) }
        }
    }

    /// The approved, unexpired exception for `control` covering `device`, if any.
    package func active(_ db: SQLiteConnection, device: DeviceView, control: Control, now: Date) throws -> ExceptionView? {
        let t = Int64(now.timeIntervalSince1970)
        let rows = try db.query("""
            SELECT id, device_id, selector FROM exceptions WHERE status = 'approved' AND expires_at > ? AND control = ?
              AND (device_id = ? OR selector IS NOT NULL) ORDER BY expires_at DESC
            """, [.int(t), .text(control.rawValue), .text(device.id)])
        for row in rows {
            if row[1].text == device.id { return try view(db, id: row[0].int ?? 0, now: t) }
            if let s = row[2].text, let selector = try? Selector(s), selector.matches(device) { return try view(db, id: row[0].int ?? 0, now: t) }
        }
        return nil
    }

    private func devices(_ db: SQLiteConnection, device: String?, selector: String?) throws -> [DeviceView] {
        if let device { return [try register.view(db, id: device, withCertificates: false)] }
        guard let selector else { return [] }
        let s = try Selector(selector)
        let ids = try db.query("SELECT id FROM devices WHERE state NOT IN ('revoked', 'retired') ORDER BY id").compactMap { $0[0].text }
        return try ids.map { try register.view(db, id: $0, withCertificates: false) }.filter(s.matches)
    }

    private func view(_ db: SQLiteConnection, id: Int64, now: Int64) throws -> ExceptionView {
        guard let r = try db.query("""
            SELECT id, device_id, selector, control, ttl, justification, compensating, expires_at, requested_by, requested_at, status, decided_by, decided_at
            FROM exceptions WHERE id = ?
            """, [.int(id)]).first else { throw WireError(.notFound, "no exception \(id)") }
        var status = r[10].text ?? ""
        if status == "approved", (r[7].int ?? 0) <= now { status = "expired" }
        return ExceptionView(id: r[0].int ?? 0, device: r[1].text, selector: r[2].text, control: r[3].text ?? "", ttl: r[4].int,
                             justification: r[5].text ?? "", compensatingControls: r[6].text ?? "", expiresAt: r[7].int ?? 0,
                             requestedBy: r[8].text ?? "", requestedAt: r[9].int ?? 0, status: status, decidedBy: r[11].text, decidedAt: r[12].int)
    }
}
