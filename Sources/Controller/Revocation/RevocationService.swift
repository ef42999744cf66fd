import Foundation
import Shared

/// Revokes a device: register state and certificates first (so renewals are
/// refused at once), then the CRL and a broker reload (so the next handshake
/// fails), then the signed revoke command (so the agent stops and erases its
/// key), then the live session is cut (so a device ignoring the command is
/// off the broker too; its reconnect fails on the CRL).
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

    package func revoke(_ params: RevokeParams, actor: String) throws -> RevokeResult {
        guard let id = DeviceID(params.id) else { throw WireError(.badRequest, "malformed device id") }
        guard let reason = RevocationReason(name: params.reason) else {
            throw WireError(.badRequest, "unknown reason '\(params.reason)' (RFC 5280: \(RevocationReason.allCases.map(\.name).joined(separator: ", ")))")
        }
        let now = clock()
        let started = ContinuousClock.now
        let (serials, reported) = try store.transaction { db -> ([String], String?) in
            guard let row = try db.query("SELECT state, reported_state FROM devices WHERE id = ?", [.text(id.rawValue)]).first,
                  let text = row[0].text, let state = DeviceState(rawValue: text) else {
                throw WireError(.notFound, "no device \(id)")
            }
            _ = try Lifecycle.next(from: state, on: .revoke)
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
            return (serials, row[1].text)
        }
        // The register already says revoked, so a retry would be refused:
        // every later step runs even when an earlier one fails, and the
        // result says which ones did not happen. A CRL that could not be
        // written now is rewritten by the periodic refresh.
        var crlNumber: UInt64?
        var crlError: String?
        do { crlNumber = try crl.publish().number } catch { crlError = "\(error)" }
        let reloaded = crlNumber != nil && crl.reloadBroker()
        let sent = commands.send(to: id, command: "revoke", args: ["reason": reason.name])
        // A connected agent that obeys acknowledges, reports `revoked` and
        // disconnects within milliseconds; give it that long so its report
        // is not lost to the cut. One that ignores the command costs this wait.
        if sent, let reported, reported != "offline", reported != "revoked" { waitForReportedRevocation(id, upTo: .milliseconds(500)) }
        // After the reload: a session cut before it could simply reconnect.
        let cut = sessions?.cut(id) ?? .notConfigured
        let elapsed = ContinuousClock.now - started
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        var result = RevokeResult(id: id.rawValue, revokedSerials: serials, crlNumber: crlNumber ?? 0, brokerReloaded: reloaded, commandSent: sent)
        result.crlError = crlError
        result.sessionCut = cut.cut
        result.sessionCutError = cut.error
        result.timeToRevokeMs = milliseconds
        if let crlError { crl.log.error("CRL not published after revocation; it will be retried", ["device": id.rawValue, "error": crlError]) }
        if let error = cut.error { crl.log.error("live session of the revoked device not cut", ["device": id.rawValue, "error": error]) }
        // Time to revoke: the command until the broker refuses the device
        // (new handshakes after the reload, the open session after the cut).
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: actor, action: "device.revoke.enforced", target: id.rawValue,
                         outcome: reloaded && cut.cut ? "ok" : "partial",
                         detail: "time_to_revoke_ms=\(milliseconds) crl=\(crlNumber.map(String.init) ?? "-") reloaded=\(reloaded) command_sent=\(sent) session_cut=\(cut.cut)")
        }
        return result
    }

    private func waitForReportedRevocation(_ id: DeviceID, upTo limit: Duration) {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let reported = try? store.withConnection { db in
                try db.query("SELECT reported_state FROM devices WHERE id = ?", [.text(id.rawValue)]).first?.first?.text
            }
            if reported == "revoked" || reported == "offline" { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
