import Foundation
import Shared

/// Revokes a device: register state and certificates first (so renewals are
/// refused at once), then the CRL and a broker reload (so the next handshake
/// fails), then the signed revoke command (so the agent stops and erases its key).
package struct RevocationService: Sendable {
    package let store: Store
    package let crl: CRLPublisher
    package let commands: CommandSender
    package let clock: @Sendable () -> Date

    package init(store: Store, crl: CRLPublisher, commands: CommandSender, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.crl = crl
        self.commands = commands
        self.clock = clock
    }

    package func revoke(_ params: RevokeParams, actor: String) throws -> RevokeResult {
        guard let id = DeviceID(params.id) else { throw WireError(.badRequest, "malformed device id") }
        guard let reason = RevocationReason(name: params.reason) else {
            throw WireError(.badRequest, "unknown reason '\(params.reason)' (RFC 5280: \(RevocationReason.allCases.map(\.name).joined(separator: ", ")))")
        }
        let now = clock()
        let serials = try store.transaction { db -> [String] in
            guard let text = try db.query("SELECT state FROM devices WHERE id = ?", [.text(id.rawValue)]).first?.first?.text,
                  let state = DeviceState(rawValue: text) else {
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
            return serials
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
        var result = RevokeResult(id: id.rawValue, revokedSerials: serials, crlNumber: crlNumber ?? 0, brokerReloaded: reloaded, commandSent: sent)
        result.crlError = crlError
        if let crlError { crl.log.error("CRL not published after revocation; it will be retried", ["device": id.rawValue, "error": crlError]) }
        return result
    }
}
