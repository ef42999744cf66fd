import Foundation
import Shared

/// Periodic access review: one item per active or suspended device for its
/// business owner, who attests keep or retire; the attestations are the
/// evidence, and the devices nobody attested are listed.
package struct AccessReview: Sendable {
    package let store: Store
    package let clock: @Sendable () -> Date

    package init(store: Store, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.clock = clock
    }

    package func start(_ p: ReviewStartParams, actor: String) throws -> ReviewView {
        guard (3600...(90 * 86400)).contains(p.dueIn) else { throw WireError(.badRequest, "dueIn must be 1 hour to 90 days") }
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        let id = try store.transaction { db -> Int64 in
            try db.query("INSERT INTO reviews(started_at, started_by, due_at) VALUES (?, ?, ?)", [.int(t), .text(actor), .int(t + p.dueIn)])
            let id = try db.query("SELECT last_insert_rowid()").first?.first?.int ?? 0
            try db.query("""
                INSERT INTO review_items(review_id, device_id, owner)
                SELECT ?, d.id, coalesce((SELECT owner FROM owners o WHERE o.device_id = d.id AND o.role = 'business'), '(unassigned)')
                FROM devices d WHERE d.state IN ('active', 'suspended')
                """, [.int(id)])
            let count = try db.query("SELECT count(*) FROM review_items WHERE review_id = ?", [.int(id)]).first?.first?.int ?? 0
            try db.audit(time: now, actor: actor, action: "review.start", target: "review:\(id)", outcome: "ok", detail: "items=\(count) due=\(t + p.dueIn)")
            return id
        }
        return try show(ReviewRef(review: id))
    }

    /// Only the device's business owner (as listed in the review) may attest, once.
    package func attest(_ p: ReviewAttestParams, decider: String, auditActor: String) throws -> ReviewView {
        guard p.decision == "keep" || p.decision == "retire" else { throw WireError(.badRequest, "decision must be keep or retire") }
        let note = try DeviceRegister.validReason(p.note)
        let now = clock()
        try store.transaction { db in
            guard let item = try db.query("SELECT owner, decision FROM review_items WHERE review_id = ? AND device_id = ?", [.int(p.review), .text(p.device)]).first else {
                throw WireError(.notFound, "review \(p.review) has no item for \(p.device)")
            }
            guard item[0].text == decider else { throw WireError(.forbidden, "\(p.device)'s business owner is \(item[0].text ?? "-"), not \(decider)") }
            guard item[1] == .null else { throw WireError(.invalidTransition, "\(p.device) was already attested in review \(p.review)") }
            try db.query("UPDATE review_items SET decision = ?, decided_by = ?, decided_at = ?, note = ? WHERE review_id = ? AND device_id = ?",
                         [.text(p.decision), .text(decider), .int(Int64(now.timeIntervalSince1970)), .text(note), .int(p.review), .text(p.device)])
            try db.audit(time: now, actor: auditActor, action: "review.attest", target: p.device, outcome: "ok", detail: "review=\(p.review) decision=\(p.decision) note=\(note)")
        }
        return try show(ReviewRef(review: p.review))
    }

    package func show(_ ref: ReviewRef) throws -> ReviewView {
        try store.withConnection { db in
            let row: SQLRow?
            if let id = ref.review {
                row = try db.query("SELECT id, started_at, started_by, due_at FROM reviews WHERE id = ?", [.int(id)]).first
            } else {
                row = try db.query("SELECT id, started_at, started_by, due_at FROM reviews ORDER BY id DESC LIMIT 1").first
            }
            guard let row, let id = row[0].int else { throw WireError(.notFound, "no access review") }
            let items = try db.query("SELECT device_id, owner, decision, decided_by, decided_at, note FROM review_items WHERE review_id = ? ORDER BY device_id",
                                     [.int(id)]).map {
                ReviewItemView(device: $0[0].text ?? "", owner: $0[1].text ?? "", decision: $0[2].text, decidedBy: $0[3].text, decidedAt: $0[4].int, note: $0[5].text)
            }
            return ReviewView(id: id, startedAt: row[1].int ?? 0, startedBy: row[2].text ?? "", dueAt: row[3].int ?? 0, items: items,
                              unattested: items.filter { $0.decision == nil }.map(\.device))
        }
    }
}
