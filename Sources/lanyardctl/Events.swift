import Foundation
import Shared

/// `lanyardctl event TYPE (--device ID | --selector S) --reason TEXT [--ref ID]`.
func eventCommand(_ type: String) throws {
    guard !type.isEmpty else { fail("missing event type\n\(commandHelp["event"] ?? "")", exitUsage) }
    guard let reason = args.value("reason") else { fail("--reason is required", exitUsage) }
    guard (args.value("device") == nil) != (args.value("selector") == nil) else { fail("give --device ID or --selector KEY=VALUE", exitUsage) }
    let r = try client.call(.eventPost, EventPostParams(type: type, device: args.value("device"), selector: args.value("selector"),
                                                        reason: reason, ref: args.value("ref")), as: EventResult.self)
    defer { if r.action == "retire", (r.retirements ?? []).contains(where: \.flagged) { exit(exitPartial) } }
    if json { printJSON(r); return }
    switch r.action {
    case "campaign":
        if let c = r.campaign { print("\(r.type): campaign \(c.id) \(c.state) over \(c.total) device(s) — lanyardctl campaign status \(c.id) --watch") }
    case "revoke":
        if let v = r.revocation {
            print("\(r.type): revoked \(v.results.count) device(s), CRL #\(v.crlNumber.map(String.init) ?? "-"), broker reloaded: \(v.brokerReloaded ? "yes" : "NO")"
                  + (v.timeToRevokeP99Ms.map { ", time to revoke p99 \($0) ms" } ?? ""))
        }
        // Approved again (the class allows re-enrollment after a revocation): each new token, shown once, for the device's token_file.
        for a in r.reapprovals ?? [] {
            print("\(a.id): approved again for re-enrollment; one-time token (expires \(time(a.expiresAt))), install it as the agent's token_file and restart the agent:")
            print(a.token)
        }
    default:
        table(["DEVICE", "KEY WIPE ACKNOWLEDGED", "RETIRED", "NOTE"],
              (r.retirements ?? []).map { [$0.id, $0.keyWipeAcknowledged ? "yes" : "NO", $0.retired ? "yes" : "NO", $0.note ?? "-"] })
    }
}
