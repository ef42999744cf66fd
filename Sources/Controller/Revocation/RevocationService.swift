import Foundation
import Shared
import Synchronization

/// Revokes devices: register state and certificates first (so renewals are
/// refused at once), then the CRL and a broker reload (so the next handshake
/// fails), then the signed revoke command (so the agent stops and erases its
/// key), then the live session is cut (so a device ignoring the command is
/// off the broker too; its reconnect fails on the CRL). Many devices (a
/// selector) share one transaction, one CRL, one reload and batched cuts.
package struct RevocationService: Sendable {
    package let store: Store
    package let crl: CRLPublisher
    package let commands: CommandSender
    package let sessions: (any SessionCutter)?
    package let clock: @Sendable () -> Date

    package init(store: Store, crl: CRLPublisher, commands: CommandSender, sessions: (any SessionCutter)? = nil,
                 clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.crl = crl
        self.commands = commands
        self.sessions = sessions
        self.clock = clock
    }

    /// One device, by id: refused (coded) when it cannot be revoked.
    package func revoke(_ params: RevokeParams, actor: String) throws -> RevokeResult {
        guard let id = DeviceID(params.id) else { throw WireError(.badRequest, "malformed device id") }
        let reason = try RevocationService.reason(params.reason)
        let run = try enforce([id], reason: reason, actor: actor, strict: true)
        return run.results[0]
    }

    /// Every device the selector matches (`vendor=acme`, `site=line-2,zone=ot`, …).
    /// Devices already revoked or retired are skipped and listed.
    package func revokeSelected(_ params: RevokeSelectedParams, register: DeviceRegister, actor: String) throws -> RevokeSelectedResult {
        try revokeSelected(params, actor: actor) { try register.select($0) }
    }

    /// The same for devices the caller has just selected with `params.selector`
    /// (retirement: the devices it sent `retire` to), without walking the register again.
    func revokeSelected(_ params: RevokeSelectedParams, selected: [SelectedDevice], actor: String) throws -> RevokeSelectedResult {
        try revokeSelected(params, actor: actor) { _ in selected }
    }

    private func revokeSelected(_ params: RevokeSelectedParams, actor: String,
                                select: (Selector) throws -> [SelectedDevice]) throws -> RevokeSelectedResult {
        let selector = try Selector(params.selector, keys: Selector.revocationKeys, maxTerms: 8)
        let reason = try RevocationService.reason(params.reason)
        let matched = try select(selector)
        let final: Set<String> = [DeviceState.revoked.rawValue, DeviceState.retired.rawValue]
        let skipped = matched.filter { final.contains($0.state) }.map(\.id)
        let targets = matched.filter { !final.contains($0.state) }.compactMap { DeviceID($0.id) }
        if params.dryRun == true || targets.isEmpty {
            return RevokeSelectedResult(selector: params.selector, dryRun: params.dryRun == true, matched: targets.map(\.rawValue), skipped: skipped,
                                        results: [], crlNumber: nil, brokerReloaded: false)
        }
        let run = try enforce(targets, reason: reason, actor: actor, strict: false)
        var result = RevokeSelectedResult(selector: params.selector, dryRun: false, matched: run.results.map(\.id), skipped: skipped + run.skipped,
                                          results: run.results, crlNumber: run.crlNumber, brokerReloaded: run.reloaded)
        let times = run.results.compactMap(\.timeToRevokeMs).sorted()
        if !times.isEmpty {
            result.timeToRevokeP50Ms = times[(times.count - 1) / 2]
            result.timeToRevokeP99Ms = times[min(times.count - 1, Int((Double(times.count) * 0.99).rounded(.up)) - 1)]
            result.timeToRevokeMaxMs = times.last
        }
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: actor, action: "device.revoke-selected", target: String(params.selector.prefix(256)), outcome: "ok",
                         detail: "reason=\(reason.name) revoked=\(run.results.count) skipped=\(result.skipped.count) p99_ms=\(result.timeToRevokeP99Ms ?? -1)")
        }
        return result
    }

    static func reason(_ name: String) throws -> RevocationReason {
        guard let reason = RevocationReason(name: name) else {
            throw WireError(.badRequest, "unknown reason '\(name)' (RFC 5280: \(RevocationReason.allCases.map(\.name).joined(separator: ", ")))")
        }
        return reason
    }

    private struct Enforcement {
        var results: [RevokeResult]
        var skipped: [String]
        var crlNumber: UInt64?
        var reloaded: Bool
    }

    /// - Parameter strict: one device: throw when it cannot be revoked. Many: skip it.
    private func enforce(_ ids: [DeviceID], reason: RevocationReason, actor: String, strict: Bool) throws -> Enforcement {
        let now = clock()
        let started = ContinuousClock.now
        var steps = StepTimer()
        var skipped: [String] = []
        let marked = try store.transaction { db -> [(id: DeviceID, serials: [String], reported: String?)] in
            var marked: [(id: DeviceID, serials: [String], reported: String?)] = []
            for id in ids {
                guard let row = try db.query("SELECT state, reported_state FROM devices WHERE id = ?", [.text(id.rawValue)]).first,
                      let text = row[0].text, let state = DeviceState(rawValue: text) else {
                    if strict { throw WireError(.notFound, "no device \(id)") }
                    skipped.append(id.rawValue)
                    continue
                }
                do { _ = try Lifecycle.next(from: state, on: .revoke) } catch {
                    if strict { throw error }
                    skipped.append(id.rawValue)
                    continue
                }
                let serials = try db.query("SELECT serial FROM certificates WHERE device_id = ? AND revoked_at IS NULL", [.text(id.rawValue)])
                    .compactMap { $0[0].text }
                let t = Int64(now.timeIntervalSince1970)
                try db.query("UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE device_id = ? AND revoked_at IS NULL",
                             [.int(t), .int(Int64(reason.rawValue)), .text(id.rawValue)])
                try db.query("UPDATE devices SET state = 'revoked', revoked_at = ?, revocation_reason = ? WHERE id = ?",
                             [.int(t), .text(reason.name), .text(id.rawValue)])
                try db.query("DELETE FROM enrollment_tokens WHERE device_id = ? AND used_at IS NULL", [.text(id.rawValue)])
                try db.audit(time: now, actor: actor, action: "device.revoke", target: id.rawValue, outcome: "ok",
                             detail: "before=\(state.rawValue) after=revoked reason=\(reason.name) serials=\(serials.joined(separator: ","))")
                marked.append((id, serials, row[1].text))
            }
            return marked
        }
        steps.lap("register")
        // The register already says revoked, so a retry would be refused:
        // every later step runs even when an earlier one fails, and the
        // result says which ones did not happen. A CRL that could not be
        // written now is rewritten by the periodic refresh.
        var crlNumber: UInt64?
        var crlError: String?
        do { crlNumber = try crl.publish().number } catch { crlError = "\(error)" }
        steps.lap("crl")
        let reloaded = crlNumber != nil && crl.reloadBroker()
        steps.lap("reload")
        if let crlError { crl.log.error("CRL not published after revocation; it will be retried", ["devices": String(marked.count), "error": crlError]) }
        // Signed and sent on several lanes: each command's register write
        // (its seq) then shares a COMMIT with the others' (group commit)
        // instead of costing the bulk one fsync per device.
        let delivered = Mutex<[DeviceID: Bool]>([:])
        let lanes = min(CampaignService.sendLanes, marked.count)
        if lanes > 0 {
            let ids = marked.map(\.id)
            MessageWorkers.runLanes(lanes) { [commands] lane in
                for i in stride(from: lane, to: ids.count, by: lanes) {
                    let ok = commands.send(to: ids[i], command: "revoke", args: ["reason": reason.name])
                    delivered.withLock { $0[ids[i]] = ok }
                }
            }
        }
        let sent = delivered.withLock { $0 }
        steps.lap("commands")
        // A connected agent that obeys acknowledges, reports `revoked` and
        // disconnects within milliseconds (up to a second on a loaded gateway);
        // give those that are online that long so their reports are not lost
        // to the cut. One that ignores the
        // command costs this wait (once for the whole batch).
        let online = marked.filter { sent[$0.id] == true && $0.reported != nil && $0.reported != "offline" && $0.reported != "revoked" }.map(\.id)
        if !online.isEmpty { waitForReportedRevocation(online, upTo: .seconds(1)) }
        steps.lap("reports")
        // After the reload: a session cut before it could simply reconnect.
        var cuts: [DeviceID: (outcome: SessionCutOutcome, at: ContinuousClock.Instant)] = [:]
        if let sessions {
            sessions.cut(marked.map(\.id)) { device, outcome in cuts[device] = (outcome, ContinuousClock.now) }
        }
        steps.lap("cuts")
        var results: [RevokeResult] = []
        for device in marked {
            let cut = cuts[device.id]
            let outcome = cut?.outcome ?? .notConfigured
            let elapsed = (cut?.at ?? ContinuousClock.now) - started
            let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
            var result = RevokeResult(id: device.id.rawValue, revokedSerials: device.serials, crlNumber: crlNumber ?? 0, brokerReloaded: reloaded,
                                      commandSent: sent[device.id] ?? false)
            result.crlError = crlError
            result.sessionCut = outcome.cut
            result.sessionCutError = outcome.error
            result.timeToRevokeMs = milliseconds
            if let error = outcome.error { crl.log.error("live session of the revoked device not cut", ["device": device.id.rawValue, "error": error]) }
            results.append(result)
        }
        // Time to revoke: the command until the broker refuses the device
        // (new handshakes after the reload, the open session after the cut).
        try? store.transaction { db in
            for r in results {
                try db.audit(time: clock(), actor: actor, action: "device.revoke.enforced", target: r.id,
                             outcome: reloaded && r.sessionCut == true ? "ok" : "partial",
                             detail: "time_to_revoke_ms=\(r.timeToRevokeMs ?? -1) crl=\(crlNumber.map(String.init) ?? "-") reloaded=\(reloaded) command_sent=\(r.commandSent) session_cut=\(r.sessionCut == true)")
            }
        }
        steps.lap("audit")
        // Where a revocation's time went, step by step (docs/benchmarks.md §9.2).
        crl.log.notice("revocation enforced", ["devices": String(marked.count), "steps_ms": steps.summary])
        return Enforcement(results: results, skipped: skipped, crlNumber: crlNumber, reloaded: reloaded)
    }

    /// Milliseconds per step of one enforcement, for the log.
    private struct StepTimer {
        private var last = ContinuousClock.now
        /// `register:12,crl:30,…` in the order the steps ran.
        private(set) var summary = ""
        mutating func lap(_ step: String) {
            let now = ContinuousClock.now
            let elapsed = now - last
            let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
            summary += (summary.isEmpty ? "" : ",") + "\(step):\(ms)"
            last = now
        }
    }

    private func waitForReportedRevocation(_ ids: [DeviceID], upTo limit: Duration) {
        let deadline = ContinuousClock.now + limit
        var waiting = Set(ids.map(\.rawValue))
        while ContinuousClock.now < deadline, !waiting.isEmpty {
            let done = (try? store.withConnection { db in
                try waiting.filter { id in
                    let reported = try db.query("SELECT reported_state FROM devices WHERE id = ?", [.text(id)]).first?.first?.text
                    return reported == "revoked" || reported == "offline"
                }
            }) ?? []
            waiting.subtract(done)
            if !waiting.isEmpty { Thread.sleep(forTimeInterval: 0.02) }
        }
    }
}
