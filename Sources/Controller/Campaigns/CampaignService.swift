import Foundation
import Shared

/// Rotation campaigns: a lifecycle event (or an operator) names a selector;
/// every matching device is sent the signed `rotate` command at a bounded
/// rate, canaries first, with abort criteria, per-device timeouts, retries
/// and a window for offline devices. A device has succeeded when the
/// controller issued it a certificate for this campaign *and* the device
/// reported that serial in use (its state report after reconnecting).
///
/// Everything the campaign knows is in `campaign_devices`: a row is marked
/// `sent` (committed) before its command is published, and `succeeded` rows
/// are never sent again, so a controller killed mid-campaign resumes without
/// repeating a device (a crash between commit and publish costs that device
/// a timeout and, if allowed, a retry).
package final class CampaignService: @unchecked Sendable {
    let store: Store
    let commands: CommandSender
    let clock: @Sendable () -> Date
    let log: Logger
    /// One tick at a time.
    private let tickLock = NSLock()
    /// Devices of one campaign between their command and their outcome
    /// (`sent`) at any time. This, not a fixed number of sends a tick, is
    /// what paces a campaign without a rate limit: it goes as fast as devices
    /// complete, while each tick's transaction stays bounded and so does what
    /// the devices' answers (ack, renewal request, state report) can pile up
    /// in the broker's queue to the controller, which drops beyond
    /// max_queued_messages (docs/benchmarks.md §9, §12).
    let maxInFlight: Int64
    static let defaultMaxInFlight: Int64 = 1000
    /// Seconds after which a sent device stops counting against the window:
    /// an online device that does not answer holds its place for a minute,
    /// not for its whole `deviceTimeout`.
    static let inFlightAge: Int64 = 60

    static let triggers: Set<String> = ["manual", "ca.rotated", "vendor.changed", "firmware.updated", "ownership.transferred",
                                        "policy.changed", "device.replaced", "device.compromised", "device.retired"]
    static let terminalDeviceStates: Set<String> = ["succeeded", "failed", "timed_out", "skipped"]

    package init(store: Store, commands: CommandSender, clock: @escaping @Sendable () -> Date, log: Logger,
                 maxInFlight: Int = Int(CampaignService.defaultMaxInFlight)) {
        self.maxInFlight = Int64(max(1, maxInFlight))
        self.store = store
        self.commands = commands
        self.clock = clock
        self.log = log
    }

    // MARK: operator calls

    package func create(_ p: CampaignCreateParams, register: DeviceRegister, actor: String) throws -> CampaignView {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw WireError(.badRequest, message) } }
        let r = p.rollout
        try check(CampaignService.triggers.contains(p.trigger), "trigger must be one of \(CampaignService.triggers.sorted().joined(separator: ", "))")
        let reason = p.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        try check(!reason.isEmpty && reason.count <= 256, "a reason (1 to 256 characters) is required")
        try check((1...CampaignRollout.unlimitedPerMinute).contains(r.maxPerMinute), "maxPerMinute must be 1 to \(CampaignRollout.unlimitedPerMinute)")
        try check((5...(7 * 86400)).contains(r.deviceTimeout), "deviceTimeout must be 5 s to 7 days")
        try check((0...10).contains(r.retries), "retries must be 0 to 10")
        try check((10...(30 * 86400)).contains(r.window), "window must be 10 s to 30 days")
        if let pct = r.abortFailurePercent { try check(pct > 0 && pct <= 100, "abortFailurePercent must be above 0 and at most 100") }
        try check((1...100_000).contains(r.abortMinExecuted), "abortMinExecuted must be 1 to 100000")
        if let type = r.abortFailureType { try check(["all", "failed", "timed_out"].contains(type), "abortFailureType must be all, failed or timed_out") }
        let ramp = [r.rampBasePerMinute != nil, r.rampFactor != nil, r.rampEverySucceeded != nil]
        try check(ramp.allSatisfy { $0 } || ramp.allSatisfy { !$0 }, "a ramp needs rampBasePerMinute, rampFactor and rampEverySucceeded together")
        if let base = r.rampBasePerMinute, let factor = r.rampFactor, let every = r.rampEverySucceeded {
            try check((1...r.maxPerMinute).contains(base), "rampBasePerMinute must be 1 to maxPerMinute")
            try check(factor > 1 && factor <= 5, "rampFactor must be above 1 and at most 5")
            try check((1...100_000).contains(every), "rampEverySucceeded must be 1 to 100000")
        }
        let selector = try Selector(p.selector, keys: Selector.revocationKeys, maxTerms: 8)
        let matched = try register.select(selector)
        try check(!matched.isEmpty, "the selector \(p.selector) matches no device")
        try check((0...matched.count).contains(r.canary), "canary must be 0 to the \(matched.count) matched devices")
        let id = "cmp-" + String(makeRequestID().prefix(12))
        let now = Int64(clock().timeIntervalSince1970)
        try store.transaction { db in
            try db.query("""
                INSERT INTO campaigns(id, trigger, reason, selector, max_per_minute, canary, abort_failure_pct, abort_min_executed,
                                      device_timeout, retries, window_seconds, state, created_by, created_at,
                                      ramp_base, ramp_factor, ramp_every, abort_failure_type)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(p.trigger), .text(reason), .text(p.selector), .int(Int64(r.maxPerMinute)), .int(Int64(r.canary)),
                      r.abortFailurePercent.map { .real($0) } ?? .null, .int(Int64(r.abortMinExecuted)), .int(Int64(r.deviceTimeout)),
                      .int(Int64(r.retries)), .int(Int64(r.window)), .text(actor), .int(now),
                      r.rampBasePerMinute.map { .int(Int64($0)) } ?? .null, r.rampFactor.map { .real($0) } ?? .null,
                      r.rampEverySucceeded.map { .int(Int64($0)) } ?? .null, r.abortFailureType.map { .text($0) } ?? .null])
            for (position, device) in matched.enumerated() {
                // Only active devices rotate; the others are listed as skipped, with why.
                let skip = device.state == DeviceState.active.rawValue ? nil : device.state
                try db.query("""
                    INSERT INTO campaign_devices(campaign_id, device_id, position, state, code, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    """, [.text(id), .text(device.id), .int(Int64(position)), .text(skip == nil ? "queued" : "skipped"),
                          skip.map { .text($0) } ?? .null, .int(now)])
            }
            try db.audit(time: clock(), actor: actor, action: "campaign.create", target: id, outcome: "ok",
                         detail: "trigger=\(p.trigger) selector=\(p.selector) devices=\(matched.count) max_per_minute=\(r.maxPerMinute) canary=\(r.canary) reason=\(reason.prefix(128))")
        }
        return try status(CampaignRef(id: id), withDevices: false)
    }

    /// The first commands go out at the next tick (within a second): sending
    /// them here would hold the operator's call, and the admin API, for as
    /// long as a large campaign's first batch takes.
    package func start(_ ref: CampaignRef, actor: String) throws -> CampaignView {
        try transition(ref, from: ["draft"], to: "running", action: "campaign.start", actor: actor, stamp: "started_at")
        return try status(ref, withDevices: false)
    }

    package func pause(_ ref: CampaignRef, actor: String) throws -> CampaignView {
        try transition(ref, from: ["running"], to: "paused", action: "campaign.pause", actor: actor, stamp: nil)
        return try status(ref, withDevices: false)
    }

    package func resume(_ ref: CampaignRef, actor: String) throws -> CampaignView {
        try transition(ref, from: ["paused"], to: "running", action: "campaign.resume", actor: actor, stamp: nil)
        return try status(ref, withDevices: false)
    }

    package func cancel(_ ref: CampaignRef, actor: String) throws -> CampaignView {
        try transition(ref, from: ["draft", "running", "paused"], to: "cancelled", action: "campaign.cancel", actor: actor, stamp: "ended_at")
        return try status(ref, withDevices: false)
    }

    private func transition(_ ref: CampaignRef, from: Set<String>, to: String, action: String, actor: String, stamp: String?) throws {
        let now = Int64(clock().timeIntervalSince1970)
        try store.transaction { db in
            guard let state = try db.query("SELECT state FROM campaigns WHERE id = ?", [.text(ref.id)]).first?.first?.text else {
                throw WireError(.notFound, "no campaign \(ref.id)")
            }
            guard from.contains(state) else {
                throw WireError(.invalidTransition, "campaign \(ref.id) is \(state); \(action) needs \(from.sorted().joined(separator: " or "))")
            }
            try db.query("UPDATE campaigns SET state = ?\(stamp.map { ", \($0) = ?" } ?? "") WHERE id = ?",
                         [.text(to)] + (stamp == nil ? [] : [.int(now)]) + [.text(ref.id)])
            try db.audit(time: clock(), actor: actor, action: action, target: ref.id, outcome: "ok",
                         detail: "before=\(state) after=\(to)\(ref.reason.map { " reason=\($0.prefix(128))" } ?? "")")
        }
    }

    package func status(_ ref: CampaignRef, withDevices: Bool = true) throws -> CampaignView {
        try store.withConnection { db in
            guard let row = try db.query(CampaignService.selectCampaigns + " WHERE id = ?", [.text(ref.id)]).first else {
                throw WireError(.notFound, "no campaign \(ref.id)")
            }
            return try view(db, row, withDevices: withDevices)
        }
    }

    package func list() throws -> CampaignListResult {
        try store.withConnection { db in
            let rows = try db.query(CampaignService.selectCampaigns + " ORDER BY created_at DESC, id")
            return CampaignListResult(campaigns: try rows.map { try view(db, $0, withDevices: false) })
        }
    }

    /// The columns `view` reads, in its order.
    private static let selectCampaigns = """
        SELECT id, trigger, reason, selector, state, max_per_minute, canary, abort_failure_pct, abort_min_executed, device_timeout,
               retries, window_seconds, created_by, created_at, started_at, ended_at, end_reason,
               ramp_base, ramp_factor, ramp_every, abort_failure_type FROM campaigns
        """

    private func view(_ db: SQLiteConnection, _ r: SQLRow, withDevices: Bool) throws -> CampaignView {
        let id = r[0].text ?? ""
        var counts: [String: Int] = [:]
        for c in try db.query("SELECT state, count(*) FROM campaign_devices WHERE campaign_id = ? GROUP BY state", [.text(id)]) {
            counts[c[0].text ?? "?"] = Int(c[1].int ?? 0)
        }
        var devices: [CampaignDeviceView]?
        if withDevices {
            devices = try db.query("SELECT device_id, state, attempts, code, issued_serial FROM campaign_devices WHERE campaign_id = ? ORDER BY position",
                                   [.text(id)]).map {
                CampaignDeviceView(id: $0[0].text ?? "", state: $0[1].text ?? "", attempts: Int($0[2].int ?? 0), code: $0[3].text, issuedSerial: $0[4].text)
            }
        }
        return CampaignView(id: id, trigger: r[1].text ?? "", reason: r[2].text ?? "", selector: r[3].text ?? "", state: r[4].text ?? "",
                            rollout: CampaignService.rollout(r, from: 5),
                            createdBy: r[12].text ?? "", createdAt: r[13].int ?? 0, startedAt: r[14].int,
                            endedAt: r[15].int, endReason: r[16].text, counts: counts, total: counts.values.reduce(0, +), devices: devices)
    }

    /// The rollout stored in a campaigns row, read from column `i` on in
    /// `selectCampaigns`' order (max_per_minute … window_seconds, then the ramp and failure type).
    private static func rollout(_ r: SQLRow, from i: Int) -> CampaignRollout {
        var rollout = CampaignRollout(maxPerMinute: Int(r[i].int ?? 0), canary: Int(r[i + 1].int ?? 0), abortFailurePercent: r[i + 2].real,
                                      abortMinExecuted: Int(r[i + 3].int ?? 1), deviceTimeout: Int(r[i + 4].int ?? 0),
                                      retries: Int(r[i + 5].int ?? 0), window: Int(r[i + 6].int ?? 0))
        rollout.rampBasePerMinute = r[i + 12].int.map { Int($0) }
        rollout.rampFactor = r[i + 13].real
        rollout.rampEverySucceeded = r[i + 14].int.map { Int($0) }
        rollout.abortFailureType = r[i + 15].text
        return rollout
    }

    // MARK: the engine

    /// Advances every running campaign: timeouts and retries, the window for
    /// offline devices, abort criteria, completion, then sends as many
    /// commands as the rate allows (canaries first). Called every second.
    package func tick() {
        tickLock.lock()
        defer { tickLock.unlock() }
        do {
            let running = try store.withConnection { db in
                try db.query("SELECT id FROM campaigns WHERE state = 'running' ORDER BY created_at").compactMap { $0[0].text }
            }
            for id in running { try advance(id) }
        } catch {
            log.error("campaign tick failed", ["error": "\(error)"])
        }
    }

    private func advance(_ id: String) throws {
        let now = Int64(clock().timeIntervalSince1970)
        let toSend = try store.transaction { db -> [String] in
            guard let c = try db.query(CampaignService.selectCampaigns + " WHERE id = ? AND state = 'running'", [.text(id)]).first else { return [] }
            let rollout = CampaignService.rollout(c, from: 5)
            let (canary, abortPct, abortMin) = (Int64(rollout.canary), rollout.abortFailurePercent, Int64(rollout.abortMinExecuted))
            let (timeout, retries, window, started) = (Int64(rollout.deviceTimeout), Int64(rollout.retries), Int64(rollout.window), c[14].int ?? now)
            // A sent device that has not reported its new certificate in time: again, or timed out.
            try db.query("""
                UPDATE campaign_devices SET state = CASE WHEN attempts <= ? THEN 'queued' ELSE 'timed_out' END,
                       code = CASE WHEN attempts <= ? THEN code ELSE 'timeout' END, updated_at = ?
                WHERE campaign_id = ? AND state = 'sent' AND sent_at + ? <= ?
                """, [.int(retries), .int(retries), .int(now), .text(id), .int(timeout), .int(now)])
            // Offline devices are waited for until the window closes.
            if started + window <= now {
                try db.query("UPDATE campaign_devices SET state = 'timed_out', code = 'offline', updated_at = ? WHERE campaign_id = ? AND state = 'waiting'",
                             [.int(now), .text(id)])
            }
            var counts: [String: Int64] = [:]
            for r in try db.query("SELECT state, count(*) FROM campaign_devices WHERE campaign_id = ? GROUP BY state", [.text(id)]) {
                counts[r[0].text ?? ""] = r[1].int ?? 0
            }
            let failures = (counts["failed"] ?? 0) + (counts["timed_out"] ?? 0)
            let executed = failures + (counts["succeeded"] ?? 0)
            // The failures the abort criterion counts (AWS IoT Jobs' failureType).
            let counted = switch rollout.abortFailureType {
            case "failed": counts["failed"] ?? 0
            case "timed_out": counts["timed_out"] ?? 0
            default: failures
            }
            func end(_ state: String, _ why: String) throws -> [String] {
                try db.query("UPDATE campaigns SET state = ?, ended_at = ?, end_reason = ? WHERE id = ?", [.text(state), .int(now), .text(why), .text(id)])
                try db.audit(time: clock(), actor: "controller", action: "campaign.\(state == "completed" ? "complete" : "abort")", target: id,
                             outcome: "ok", detail: "reason=\(why) succeeded=\(counts["succeeded"] ?? 0) failed=\(counts["failed"] ?? 0) timed_out=\(counts["timed_out"] ?? 0)")
                log.notice("campaign \(state)", ["campaign": id, "reason": why])
                return []
            }
            if let abortPct, executed >= abortMin, Double(counted) * 100 >= abortPct * Double(executed) {
                let kind = rollout.abortFailureType.map { $0 == "all" ? "failures" : "\($0) devices" } ?? "failures"
                return try end("aborted", "\(kind) \(counted) of \(executed) executed reached \(abortPct)%")
            }
            if canary > 0 {
                let canaryFailed = try db.query("""
                    SELECT count(*) FROM campaign_devices WHERE campaign_id = ? AND position < ? AND state IN ('failed', 'timed_out')
                    """, [.text(id), .int(canary)]).first?.first?.int ?? 0
                if canaryFailed > 0 { return try end("aborted", "a canary device failed") }
            }
            if (counts["queued"] ?? 0) + (counts["waiting"] ?? 0) + (counts["sent"] ?? 0) == 0 {
                return try end("completed", "every device executed")
            }
            // Canaries first: nothing beyond them until they have all succeeded.
            var limit = Int64.max
            if canary > 0 {
                let canaryDone = try db.query("SELECT count(*) FROM campaign_devices WHERE campaign_id = ? AND position < ? AND state = 'succeeded'",
                                              [.text(id), .int(canary)]).first?.first?.int ?? 0
                if canaryDone < canary { limit = canary }
            }
            let perMinute = Int64(rollout.ratePerMinute(succeeded: Int(counts["succeeded"] ?? 0)))
            // Without a rate limit, the window alone paces: no need to scan the campaign's rows for the last minute's sends.
            let recent = perMinute >= CampaignRollout.unlimitedPerMinute ? 0 : try db.query(
                "SELECT count(*) FROM campaign_devices WHERE campaign_id = ? AND sent_at > ?", [.text(id), .int(now - 60)]).first?.first?.int ?? 0
            let inFlight = try db.query("SELECT count(*) FROM campaign_devices WHERE campaign_id = ? AND state = 'sent' AND sent_at > ?",
                                        [.text(id), .int(now - CampaignService.inFlightAge)]).first?.first?.int ?? 0
            var budget = min(perMinute - recent, maxInFlight - inFlight)
            guard budget > 0 else { return [] }
            var picked: [String] = []
            let candidates = try db.query("""
                SELECT cd.device_id, d.state, d.reported_state FROM campaign_devices cd JOIN devices d ON d.id = cd.device_id
                WHERE cd.campaign_id = ? AND cd.state IN ('queued', 'waiting') AND cd.position < ? ORDER BY cd.position LIMIT ?
                """, [.text(id), .int(limit), .int(min(budget * 4 + 16, 10_000))])
            for row in candidates where budget > 0 {
                guard let device = row[0].text else { continue }
                if row[1].text != DeviceState.active.rawValue {
                    try db.query("UPDATE campaign_devices SET state = 'skipped', code = ?, updated_at = ? WHERE campaign_id = ? AND device_id = ?",
                                 [.text(row[1].text ?? "?"), .int(now), .text(id), .text(device)])
                    continue
                }
                if row[2].text == nil || row[2].text == "offline" {
                    try db.query("UPDATE campaign_devices SET state = 'waiting', updated_at = ? WHERE campaign_id = ? AND device_id = ? AND state <> 'waiting'",
                                 [.int(now), .text(id), .text(device)])
                    continue
                }
                try db.query("""
                    UPDATE campaign_devices SET state = 'sent', attempts = attempts + 1, sent_at = ?, jti = NULL, issued_serial = NULL, updated_at = ?
                    WHERE campaign_id = ? AND device_id = ?
                    """, [.int(now), .int(now), .text(id), .text(device)])
                picked.append(device)
                budget -= 1
            }
            return picked
        }
        // Published after the commit: a crash in between leaves `sent` rows
        // without a command, which time out and are retried; none is sent twice.
        // Devices are independent: several lanes sign and send at once, and
        // their register writes share COMMITs (Store.transaction's group commit).
        let lanes = min(CampaignService.sendLanes, toSend.count)
        guard lanes > 0 else { return }
        MessageWorkers.runLanes(lanes) { [self] lane in
            for device in stride(from: lane, to: toSend.count, by: lanes).map({ toSend[$0] }) {
                guard let deviceID = DeviceID(device) else { continue }
                if let jti = commands.sendReturningID(to: deviceID, command: "rotate", args: ["campaign": id]) {
                    do {
                        try store.transaction { db in
                            try db.query("UPDATE campaign_devices SET jti = ? WHERE campaign_id = ? AND device_id = ?", [.text(jti), .text(id), .text(device)])
                        }
                    } catch {
                        log.error("campaign: cannot record the command id", ["campaign": id, "device": device, "error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Commands of one tick signed and sent at once.
    static let sendLanes = 16

    // MARK: what devices and the issuer report

    /// The controller issued `device` a certificate for `campaign`.
    package func noteIssued(device: DeviceID, campaign: String, serial: String) {
        try? store.transaction { db in
            try db.query("UPDATE campaign_devices SET issued_serial = ?, updated_at = ? WHERE campaign_id = ? AND device_id = ? AND state = 'sent'",
                         [.text(serial), .int(Int64(clock().timeIntervalSince1970)), .text(campaign), .text(device.rawValue)])
        }
    }

    /// A state report: the device runs on `serial` now.
    package func noteState(device: DeviceID, serial: String?) {
        try? store.transaction { db in try noteState(db, device: device, serial: serial) }
    }

    /// `noteState` inside the caller's transaction (with the device's state, ControllerService).
    package func noteState(_ db: SQLiteConnection, device: DeviceID, serial: String?) throws {
        guard let serial else { return }
        try db.query("UPDATE campaign_devices SET state = 'succeeded', updated_at = ? WHERE device_id = ? AND state = 'sent' AND issued_serial = ?",
                     [.int(Int64(clock().timeIntervalSince1970)), .text(device.rawValue), .text(serial)])
    }

    /// The device refused the rotate command: failed, with its coded reason.
    package func noteAck(device: DeviceID, _ ack: CommandAck) {
        guard ack.outcome == "refused" else { return }
        try? store.transaction { db in
            try db.query("UPDATE campaign_devices SET state = 'failed', code = ?, updated_at = ? WHERE device_id = ? AND jti = ? AND state = 'sent'",
                         [.text(String((ack.code ?? "refused").prefix(32))), .int(Int64(clock().timeIntervalSince1970)), .text(device.rawValue), .text(ack.jti)])
        }
    }
}
