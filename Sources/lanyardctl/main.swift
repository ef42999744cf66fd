import Foundation
import Shared

// lanyardctl: the operator's client of the controller's admin API.
// Exit status: 0 done, 1 refused by the controller (coded error on stderr),
// 2 done only in part (e.g. revoked but the broker could not be reloaded or the live session not cut),
// 64 usage error, 69 controller unreachable.
let exitRefused: Int32 = 1, exitUsage: Int32 = 64, exitUnavailable: Int32 = 69

let usage = """
usage: lanyardctl [--socket PATH] [--json] COMMAND

  device add ID --class CLASS [--owner ROLE=NAME]...   register a device (roles: identity, secarch, ops, procurement, business)
  device approve ID [--token-ttl DURATION]             approve it and print its one-time enrollment token
  device list                                          every device with state, serial and expiry
  device show ID                                       one device with its certificates
  revoke ID --reason REASON                            revoke (RFC 5280 reason, e.g. keyCompromise, cessationOfOperation)
  status                                               controller, broker connection and CRL
  audit verify                                         recompute the audit hash chain; exit 1 naming the first bad entry
  audit export [--output FILE]                         the audit trail as JSON lines (stdout by default)

  --socket PATH   admin socket (default: $LANYARD_SOCKET or /var/lib/lanyard/admin.sock)
  --json          print the API's JSON instead of a table
"""

func fail(_ message: String, _ status: Int32) -> Never {
    FileHandle.standardError.write(Data("lanyardctl: \(message)\n".utf8))
    exit(status)
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
}

func time(_ seconds: Int64?) -> String {
    guard let seconds else { return "-" }
    return Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(.iso8601)
}

func table(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for row in [header] + rows {
        print(row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  "))
    }
}

let args: Arguments
do {
    args = try Arguments(CommandLine.arguments.dropFirst(), valueOptions: ["socket", "class", "owner", "token-ttl", "reason", "output"],
                         flagOptions: ["json", "help"])
} catch { fail("\(error)\n\(usage)", exitUsage) }
if args.flag("help") || args.positional.isEmpty || args.positional.first == "help" {
    print(usage)
    exit(args.positional.isEmpty && !args.flag("help") ? exitUsage : 0)
}
let client = AdminClient(socketPath: args.value("socket") ?? ProcessInfo.processInfo.environment["LANYARD_SOCKET"] ?? "/var/lib/lanyard/admin.sock")
let json = args.flag("json")
let words = args.positional

func argument(_ index: Int, _ what: String) -> String {
    guard words.count > index else { fail("missing \(what)\n\(usage)", exitUsage) }
    return words[index]
}

func showDevice(_ d: DeviceView) {
    print("device      \(d.id)")
    print("class       \(d.deviceClass)")
    print("state       \(d.state)\(d.reportedState.map { " (agent reports \($0))" } ?? "")")
    for role in OwnerRole.allCases { print("owner       \(role.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0))\(d.owners[role.rawValue] ?? "(missing)")") }
    print("serial      \(d.serial ?? "-")")
    print("not after   \(time(d.notAfter))")
    print("last seen   \(time(d.lastSeen))")
    if let revoked = d.revokedAt { print("revoked     \(time(revoked)) \(d.revocationReason ?? "")") }
    if let certs = d.certificates, !certs.isEmpty {
        print("certificates:")
        table(["SERIAL", "KIND", "ISSUED", "NOT AFTER", "REVOKED"],
              certs.map { [$0.serial, $0.kind, time($0.issuedAt), time($0.notAfter), $0.revokedAt.map { time($0) } ?? "-"] })
    }
}

do {
    switch (words[0], words.count > 1 ? words[1] : "") {
    case ("device", "add"):
        var owners: [String: String] = [:]
        for pair in args.values("owner") {
            guard let eq = pair.firstIndex(of: "=") else { fail("--owner takes ROLE=NAME, got '\(pair)'", exitUsage) }
            owners[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        guard let cls = args.value("class") else { fail("--class is required", exitUsage) }
        let d = try client.call(.deviceAdd, DeviceAddParams(id: argument(2, "device id"), deviceClass: cls, owners: owners), as: DeviceView.self)
        if json { printJSON(d) } else {
            print("registered \(d.id) (class \(d.deviceClass))")
            if !d.missingOwners.isEmpty { print("missing owners: \(d.missingOwners.joined(separator: ", ")) — it cannot be approved until they are assigned") }
        }
    case ("device", "approve"):
        var ttl: Int?
        if let text = args.value("token-ttl") {
            guard let d = ConfigReader.parseDuration(text) else { fail("--token-ttl must be a duration such as 1h", exitUsage) }
            ttl = Int(d.seconds)
        }
        let r = try client.call(.deviceApprove, DeviceApproveParams(id: argument(2, "device id"), tokenTTL: ttl), as: ApprovalResult.self)
        if json { printJSON(r) } else {
            // The token alone on stdout so scripts can capture it; the rest on stderr.
            print(r.token)
            FileHandle.standardError.write(Data("approved \(r.id); one-time enrollment token valid until \(time(r.expiresAt))\n".utf8))
        }
    case ("device", "list"):
        let r = try client.call(.deviceList, Empty(), as: DeviceListResult.self)
        if json { printJSON(r) } else {
            table(["DEVICE", "CLASS", "STATE", "AGENT", "SERIAL", "NOT AFTER", "MISSING OWNERS"],
                  r.devices.map { [$0.id, $0.deviceClass, $0.state, $0.reportedState ?? "-", $0.serial ?? "-", time($0.notAfter),
                                   $0.missingOwners.isEmpty ? "-" : $0.missingOwners.joined(separator: ",")] })
        }
    case ("device", "show"):
        let d = try client.call(.deviceShow, DeviceRef(id: argument(2, "device id")), as: DeviceView.self)
        if json { printJSON(d) } else { showDevice(d) }
    case ("revoke", _):
        guard let reason = args.value("reason") else { fail("--reason is required (e.g. keyCompromise)", exitUsage) }
        let r = try client.call(.deviceRevoke, RevokeParams(id: argument(1, "device id"), reason: reason), as: RevokeResult.self)
        if json { printJSON(r) } else {
            print("revoked \(r.id): \(r.revokedSerials.count) certificate(s), CRL #\(r.crlNumber), broker reloaded: \(r.brokerReloaded ? "yes" : "NO"), revoke command sent: \(r.commandSent ? "yes" : "NO"), live session cut: \(r.sessionCut.map { $0 ? "yes" : "NO" } ?? "-")\(r.timeToRevokeMs.map { ", enforced in \($0) ms" } ?? "")")
            if let e = r.sessionCutError { FileHandle.standardError.write(Data("lanyardctl: warning: the device's live session was not cut (\(e))\n".utf8)) }
            if let e = r.crlError { FileHandle.standardError.write(Data("lanyardctl: warning: the CRL was not written (\(e)); the controller retries\n".utf8)) }
        }
        // Revoked in the register, but the broker or the device was not told: scripts must notice.
        if !r.brokerReloaded || !r.commandSent || r.crlError != nil || r.sessionCut == false { exit(2) }
    case ("status", _):
        let s = try client.call(.status, Empty(), as: ControllerStatus.self)
        if json { printJSON(s) } else {
            print("trust domain  \(s.trustDomain)")
            print("broker        \(s.brokerConnected ? "connected" : "DISCONNECTED")")
            print("devices       \(s.devices)")
            print("issued        \(s.issued)")
            print("CRL           #\(s.crlNumber), next update \(time(s.crlNextUpdate))")
        }
    case ("audit", "verify"):
        let v = try client.call(.auditVerify, Empty(), as: AuditVerification.self)
        if json { printJSON(v) } else if v.ok {
            print("audit trail intact: \(v.entries) entries, every hash and link recomputed")
        } else {
            print("audit trail BROKEN at entry \(v.firstBadSeq.map(String.init) ?? "?"): \(v.problem ?? "")")
        }
        if !v.ok { exit(exitRefused) }
    case ("audit", "export"):
        let export = try client.call(.auditExport, Empty(), as: AuditExport.self)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for entry in export.entries {
            lines.append(try encoder.encode(entry))
            lines.append(0x0A)
        }
        if let output = args.value("output") {
            try lines.write(to: URL(fileURLWithPath: output), options: .atomic)
            FileHandle.standardError.write(Data("wrote \(export.entries.count) entries to \(output)\n".utf8))
        } else {
            FileHandle.standardOutput.write(lines)
        }
    default:
        fail("unknown command '\(words.joined(separator: " "))'\n\(usage)", exitUsage)
    }
} catch let error as WireError {
    fail(error.description, exitRefused)
} catch let error as FileError {
    fail(error.description, exitUnavailable)
} catch {
    fail("\(error)", exitRefused)
}
