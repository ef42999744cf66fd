import Foundation
import Shared

// lanyardctl: the operator's client of the controller's admin API, over
// HTTPS with a bearer token (--server) or the local Unix socket (--socket).
// Usage and exit statuses: Help.swift, Output.swift, docs/admin-api.md.

// A server that refuses on the headers may close before the body is sent: an
// error from the write, not a SIGPIPE that kills lanyardctl without a word.
signal(SIGPIPE, SIG_IGN)

let args: Arguments
do {
    args = try Arguments(CommandLine.arguments.dropFirst(), valueOptions: [
        "socket", "server", "cacert", "token-file", "cert", "key", "class", "owner", "token-ttl", "reason", "output",
        "vendor", "model", "hw-serial", "firmware", "site", "zone", "tag", "bootstrap", "state", "with",
        "ttl", "max-ttl", "renew-at", "required-owners", "key-algorithms", "rotate-keys", "bootstrap-methods", "renewal-sla",
        "revocation-sla", "offline-tolerance", "reenroll-after-expiry", "reenroll-window", "reapprove-after-revocation", "exception-max",
        "support-end", "vendor-managed", "clauses", "device", "selector", "control", "justification", "compensating", "expires", "role", "format", "due", "review", "decision", "note", "severity",
        "ref", "trigger", "max-per-minute", "canary", "abort-failure-pct", "abort-min-executed", "timeout", "retries", "window",
        "bundle-timeout", "device-timeout", "abort-failure-type", "ramp-base", "ramp-factor", "ramp-every", "page-size",
    ], flagOptions: ["json", "help", "dry-run", "watch", "no-wait", "no-progress"])
} catch { fail("\(error)\n\(globalUsage)", exitUsage) }

let words = args.positional
if words.isEmpty || words.first == "help" {
    print(globalUsage)
    exit(words.isEmpty && !args.flag("help") ? exitUsage : 0)
}
let commandName = words.count > 1 && commandHelp["\(words[0]) \(words[1])"] != nil ? "\(words[0]) \(words[1])" : words[0]
if args.flag("help") {
    if let help = commandHelp[commandName] { print(help) } else {
        let group = commandHelp.keys.filter { $0.hasPrefix(words[0] + " ") }.sorted()
        print(group.isEmpty ? globalUsage : group.compactMap { commandHelp[$0] }.joined(separator: "\n\n"))
    }
    exit(0)
}

/// The admin API over HTTPS or the local socket; the same operations either way.
enum Transport {
    case socket(AdminClient)
    case https(HTTPSAdminClient)

    func call<P: Encodable, R: Decodable>(_ op: AdminOperation, _ params: P, as type: R.Type) throws -> R {
        switch self {
        case .socket(let c): try c.call(op, params, as: type)
        case .https(let c): try c.call(op, params, as: type)
        }
    }
}

// An empty variable counts as unset.
let environment = ProcessInfo.processInfo.environment.filter { !$0.value.isEmpty }
let client: Transport = {
    guard let server = args.value("server") ?? environment["LANYARD_URL"] else {
        return .socket(AdminClient(socketPath: args.value("socket") ?? environment["LANYARD_SOCKET"] ?? "/var/lib/lanyard/admin.sock"))
    }
    guard let ca = args.value("cacert") ?? environment["LANYARD_CACERT"] else { fail("--cacert (or $LANYARD_CACERT) is required with --server", exitUsage) }
    guard var https = HTTPSClient(url: server, caFile: ca) else { fail("--server must look like https://host:port", exitUsage) }
    https.certificateFile = args.value("cert") ?? environment["LANYARD_CERT"]
    https.keyFile = args.value("key") ?? environment["LANYARD_KEY"]
    guard (https.certificateFile == nil) == (https.keyFile == nil) else { fail("--cert and --key go together", exitUsage) }
    // The token comes from a file or the environment, never the command line (ps shows it to everyone).
    var token = environment["LANYARD_TOKEN"]
    if let file = args.value("token-file") ?? environment["LANYARD_TOKEN_FILE"] {
        do { token = try AtomicFile.readText(file, limit: 4096).trimmed() } catch { fail("cannot read the token file: \(error)", exitUsage) }
    }
    guard token?.isEmpty == false || https.certificateFile != nil else {
        fail("--server needs a token (--token-file or $LANYARD_TOKEN) or a client certificate (--cert and --key)", exitUsage)
    }
    return .https(HTTPSAdminClient(client: https, token: token?.isEmpty == false ? token : nil))
}()
let json = args.flag("json")

func argument(_ index: Int, _ what: String) -> String {
    guard words.count > index else { fail("missing \(what)\n\(commandHelp[commandName] ?? globalUsage)", exitUsage) }
    return words[index]
}

func owners() -> [String: String] {
    var owners: [String: String] = [:]
    for pair in args.values("owner") {
        guard let eq = pair.firstIndex(of: "=") else { fail("--owner takes ROLE=NAME, got '\(pair)'", exitUsage) }
        owners[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    return owners
}

func attributes() -> DeviceAttributes {
    DeviceAttributes(vendor: args.value("vendor"), model: args.value("model"), hardwareSerial: args.value("hw-serial"), firmware: args.value("firmware"),
                     site: args.value("site"), zone: args.value("zone"), tags: args.values("tag").isEmpty ? nil : args.values("tag"),
                     bootstrapMethod: args.value("bootstrap"))
}

func yesNo(_ name: String) -> Bool? {
    guard let v = args.value(name) else { return nil }
    switch v.lowercased() {
    case "yes", "true", "1": return true
    case "no", "false", "0": return false
    default: fail("--\(name) takes yes or no", exitUsage)
    }
}

func seconds(_ name: String) -> Int64? {
    guard let v = args.value(name) else { return nil }
    guard let d = ConfigReader.parseDuration(v) else { fail("--\(name) must be a duration such as 90s, 15m, 24h or 30d", exitUsage) }
    return d.seconds
}

func list(_ name: String) -> [String]? {
    args.value(name).map { $0.split(separator: ",").map { $0.trimmed() }.filter { !$0.isEmpty } }
}

func printDevice(_ d: DeviceView, _ summary: String) {
    if json { printJSON(d) } else { print(summary) }
}

do {
    switch (words[0], words.count > 1 ? words[1] : "") {
    case ("device", "add"):
        guard let cls = args.value("class") else { fail("--class is required", exitUsage) }
        let d = try client.call(.deviceAdd, DeviceAddParams(id: argument(2, "device id"), deviceClass: cls, owners: owners(), attributes: attributes()),
                                as: DeviceView.self)
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
            note("approved \(r.id); one-time enrollment token valid until \(time(r.expiresAt))")
        }
    case ("device", "list"):
        try listDevices()
    case ("device", "show"):
        let d = try client.call(.deviceShow, DeviceRef(id: argument(2, "device id")), as: DeviceView.self)
        if json { printJSON(d) } else { showDevice(d) }
    case ("device", "update"):
        let d = try client.call(.deviceUpdate, DeviceUpdateParams(id: argument(2, "device id"), attributes: attributes(), reason: args.value("reason")),
                                as: DeviceView.self)
        printDevice(d, "updated \(d.id)\(d.rotationRequired.map { "; its key must rotate (\($0))" } ?? "")")
    case ("device", let event) where ["suspend", "resume", "retire"].contains(event):
        let d = try client.call(.deviceTransition, DeviceTransitionParams(id: argument(2, "device id"), event: event, reason: args.value("reason")),
                                as: DeviceView.self)
        printDevice(d, "\(d.id) is now \(d.state)")
    case ("device", "transfer"):
        let d = try client.call(.deviceTransfer, DeviceTransferParams(id: argument(2, "device id"), owners: owners(), reason: args.value("reason")),
                                as: DeviceView.self)
        printDevice(d, "transferred \(d.id): \(d.owners.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
                    + (d.rotationRequired != nil ? "; its key must rotate" : ""))
    case ("device", "replace"):
        guard let new = args.value("with") else { fail("--with NEW is required", exitUsage) }
        let d = try client.call(.deviceReplace, DeviceReplaceParams(id: argument(2, "device id"), replacement: new, reason: args.value("reason")),
                                as: DeviceView.self)
        printDevice(d, "\(d.id) is retired, replaced by \(d.replacedBy ?? new)")
    case ("revoke", _) where args.value("selector") != nil:
        guard let reason = args.value("reason") else { fail("--reason is required (e.g. keyCompromise)", exitUsage) }
        guard args.positional.count == 1 else { fail("give either a device id or --selector, not both", exitUsage) }
        let r = try client.call(.deviceRevokeSelected, RevokeSelectedParams(selector: args.value("selector") ?? "", reason: reason,
                                                                           dryRun: args.flag("dry-run") ? true : nil), as: RevokeSelectedResult.self)
        if json { printJSON(r) } else if r.dryRun {
            print("would revoke \(r.matched.count) device(s) matching \(r.selector): \(r.matched.joined(separator: ", "))")
            if !r.skipped.isEmpty { print("already revoked or retired: \(r.skipped.joined(separator: ", "))") }
        } else {
            table(["DEVICE", "CERTIFICATES", "COMMAND SENT", "SESSION CUT", "TIME TO REVOKE"],
                  r.results.map { [$0.id, String($0.revokedSerials.count), $0.commandSent ? "yes" : "NO", $0.sessionCut == true ? "yes" : "NO",
                                   $0.timeToRevokeMs.map { "\($0) ms" } ?? "-"] })
            print("revoked \(r.results.count) device(s) matching \(r.selector): CRL #\(r.crlNumber.map(String.init) ?? "-"), broker reloaded: \(r.brokerReloaded ? "yes" : "NO")"
                  + (r.timeToRevokeP50Ms.map { ", time to revoke p50 \($0) ms, p99 \(r.timeToRevokeP99Ms ?? 0) ms" } ?? ""))
            if !r.skipped.isEmpty { print("skipped (already revoked or retired, or gone): \(r.skipped.joined(separator: ", "))") }
        }
        if !r.dryRun && (!r.results.isEmpty && (!r.brokerReloaded || r.results.contains { !$0.commandSent || $0.sessionCut != true })) { exit(exitPartial) }
    case ("revoke", _):
        guard let reason = args.value("reason") else { fail("--reason is required (e.g. keyCompromise)", exitUsage) }
        let r = try client.call(.deviceRevoke, RevokeParams(id: argument(1, "device id"), reason: reason), as: RevokeResult.self)
        if json { printJSON(r) } else {
            print("revoked \(r.id): \(r.revokedSerials.count) certificate(s), CRL #\(r.crlNumber), broker reloaded: \(r.brokerReloaded ? "yes" : "NO"), revoke command sent: \(r.commandSent ? "yes" : "NO"), live session cut: \(r.sessionCut.map { $0 ? "yes" : "NO" } ?? "-")\(r.timeToRevokeMs.map { ", enforced in \($0) ms" } ?? "")")
            if let e = r.sessionCutError { note("lanyardctl: warning: the device's live session was not cut (\(e))") }
            if let e = r.crlError { note("lanyardctl: warning: the CRL was not written (\(e)); the controller retries") }
        }
        // Revoked in the register, but the broker or the device was not told, or its session is still open: scripts must notice.
        if !r.brokerReloaded || !r.commandSent || r.crlError != nil || r.sessionCut == false { exit(exitPartial) }
    case ("campaign", let verb):
        try campaignCommand(verb)
    case ("event", let type):
        try eventCommand(type)
    case ("ca", let verb):
        exit(try CACommand.run(verb, args, program: "lanyardctl", call: { op, params in try client.call(op, params, as: CAStatusView.self) },
                               print: { print($0) }, printJSON: { printJSON($0) }))
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
            note("wrote \(export.entries.count) entries to \(output)")
        } else {
            FileHandle.standardOutput.write(lines)
        }
    case ("class", "list"):
        let r = try client.call(.classList, Empty(), as: ClassListResult.self)
        if json { printJSON(r) } else {
            table(["CLASS", "VERSION", "TTL", "MAX TTL", "RENEW AT", "ROTATE KEYS", "KEYS", "BOOTSTRAP", "REQUIRED OWNERS"],
                  r.classes.map { [$0.name, String($0.version ?? 0), duration($0.ttl), duration($0.maxTTL), String(format: "%.2f", $0.renewAt),
                                   $0.rotateKeys ? "yes" : "no", $0.keyAlgorithms.joined(separator: ","), $0.bootstrapMethods.joined(separator: ","),
                                   $0.requiredOwners.joined(separator: ",")] })
        }
    case ("class", "set"):
        let name = argument(2, "class name")
        let current = try client.call(.classList, Empty(), as: ClassListResult.self).classes.first { $0.name == name }
        guard var p = current ?? (args.value("ttl") != nil ? ClassPolicyView(
            name: name, ttl: 86400, maxTTL: 30 * 86400, renewAt: 2.0 / 3.0, requiredOwners: OwnerRole.allCases.map(\.rawValue), keyAlgorithms: ["P-256"],
            rotateKeys: true, bootstrapMethods: ["token"], renewalSLA: 3600, revocationSLA: 900, offlineTolerance: 7 * 86400, reenrollAfterExpiry: false,
            exceptionMaxDuration: 90 * 86400) : nil) else { fail("class \(name) does not exist; give at least --ttl to create it", exitUsage) }
        p.version = nil
        p.recordedAt = nil
        p.recordedBy = nil
        if let v = seconds("ttl") { p.ttl = v }
        if let v = seconds("max-ttl") { p.maxTTL = v }
        if let v = args.value("renew-at") { guard let d = Double(v) else { fail("--renew-at takes a fraction such as 0.66", exitUsage) }; p.renewAt = d }
        if let v = list("required-owners") { p.requiredOwners = v }
        if let v = list("key-algorithms") { p.keyAlgorithms = v }
        if let v = yesNo("rotate-keys") { p.rotateKeys = v }
        if let v = list("bootstrap-methods") { p.bootstrapMethods = v }
        if let v = seconds("renewal-sla") { p.renewalSLA = v }
        if let v = seconds("revocation-sla") { p.revocationSLA = v }
        if let v = seconds("offline-tolerance") { p.offlineTolerance = v }
        if let v = yesNo("reenroll-after-expiry") { p.reenrollAfterExpiry = v }
        if let v = seconds("reenroll-window") { p.reenrollWindow = v }
        if let v = seconds("exception-max") { p.exceptionMaxDuration = v }
        if let v = yesNo("reapprove-after-revocation") { p.reapproveAfterRevocation = v }
        let r = try client.call(.classSet, ClassSetParams(policy: p, reason: args.value("reason")), as: ClassPolicyView.self)
        if json { printJSON(r) } else { print("class \(r.name) is now at version \(r.version ?? 0)") }
    case ("vendor", "list"):
        let r = try client.call(.vendorList, Empty(), as: VendorListResult.self)
        if json { printJSON(r) } else {
            table(["VENDOR", "SUPPORT END", "VENDOR-MANAGED", "ISSUANCE", "ROTATION", "REVOCATION"],
                  r.vendors.map { [$0.name, time($0.supportEnd), $0.vendorManaged ? "yes" : "no", $0.clauseIssuance ? "yes" : "no",
                                   $0.clauseRotation ? "yes" : "no", $0.clauseRevocation ? "yes" : "no"] })
        }
    case ("vendor", "set"):
        var v = VendorView(name: argument(2, "vendor name"))
        if let text = args.value("support-end") {
            guard let t = parseTime(text) else { fail("--support-end takes YYYY-MM-DD", exitUsage) }
            v.supportEnd = t
        }
        v.vendorManaged = yesNo("vendor-managed") ?? false
        let clauses = list("clauses") ?? []
        for c in clauses where !["issuance", "rotation", "revocation"].contains(c) { fail("--clauses takes issuance, rotation, revocation; got \(c)", exitUsage) }
        v.clauseIssuance = clauses.contains("issuance")
        v.clauseRotation = clauses.contains("rotation")
        v.clauseRevocation = clauses.contains("revocation")
        let r = try client.call(.vendorSet, v, as: VendorView.self)
        if json { printJSON(r) } else { print("vendor \(r.name) recorded\(r.hasIdentityClauses ? "" : " (WITHOUT all identity clauses: its devices are a finding)")") }
    case ("exception", "request"):
        guard let control = args.value("control") else { fail("--control is required", exitUsage) }
        guard let justification = args.value("justification"), let compensating = args.value("compensating") else {
            fail("--justification and --compensating are required", exitUsage)
        }
        guard let expiresText = args.value("expires"), let expires = parseTime(expiresText) else { fail("--expires takes YYYY-MM-DD or a duration", exitUsage) }
        let p = ExceptionRequestParams(device: args.value("device"), selector: args.value("selector"), control: control, ttl: seconds("ttl"),
                                       justification: justification, compensatingControls: compensating, expiresAt: expires)
        let r = try client.call(.exceptionRequest, p, as: ExceptionView.self)
        if json { printJSON(r) } else { print("exception \(r.id) requested; pending the business owner's decision") }
    case ("exception", let decision) where decision == "approve" || decision == "reject":
        guard let id = Int64(argument(2, "exception id")) else { fail("exception id must be a number", exitUsage) }
        let r = try client.call(.exceptionDecide, ExceptionDecideParams(id: id, decision: decision, reason: args.value("reason")), as: ExceptionView.self)
        if json { printJSON(r) } else { print("exception \(r.id) \(r.status)") }
    case ("exception", "list"):
        let r = try client.call(.exceptionList, Empty(), as: ExceptionListResult.self)
        if json { printJSON(r) } else {
            table(["ID", "TARGET", "CONTROL", "STATUS", "EXPIRES", "REQUESTED BY", "DECIDED BY"],
                  r.exceptions.map { [String($0.id), $0.device ?? $0.selector ?? "-", $0.control, $0.status, time($0.expiresAt), $0.requestedBy, $0.decidedBy ?? "-"] })
        }
    case ("operator", "add"):
        let r = try client.call(.operatorAdd, OperatorAddParams(name: argument(2, "operator name"), roles: args.values("role")), as: OperatorCreated.self)
        if json { printJSON(r) } else {
            print(r.token)
            note("created operator \(r.operatorInfo.name) (\(r.operatorInfo.roles.joined(separator: ","))); the token above is shown once")
        }
    case ("operator", "remove"):
        let r = try client.call(.operatorRemove, OperatorRef(name: argument(2, "operator name"), reason: args.value("reason")), as: OperatorView.self)
        if json { printJSON(r) } else { print("removed operator \(r.name); its token no longer works") }
    case ("operator", "list"):
        let r = try client.call(.operatorList, Empty(), as: OperatorListResult.self)
        if json { printJSON(r) } else { table(["OPERATOR", "ROLES", "CREATED", "BY"], r.operators.map { [$0.name, $0.roles.joined(separator: ","), time($0.createdAt), $0.createdBy] }) }
    case ("whoami", _):
        let r = try client.call(.whoami, Empty(), as: WhoAmI.self)
        if json { printJSON(r) } else { print("\(r.name) (\(r.roles.joined(separator: ",")))") }
    case ("register", "export"):
        let r = try client.call(.registerExport, Empty(), as: CSVExport.self)
        if let output = args.value("output") {
            try Data(r.csv.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            note("wrote the register to \(output)")
        } else {
            FileHandle.standardOutput.write(Data(r.csv.utf8))
        }
    case ("register", "import"):
        let path = argument(2, "CSV file")
        let text: String
        do { text = try AtomicFile.readText(path, limit: 32 << 20) } catch { fail("cannot read \(path): \(error)", exitUsage) }
        let r = try client.call(.registerImport, CSVImportParams(csv: text, dryRun: args.flag("dry-run")), as: CSVImportResult.self)
        if json { printJSON(r) } else if r.problems.isEmpty {
            print("\(r.applied ? "imported" : "checked (dry run, nothing applied)"): \(r.created) new, \(r.updated) updated")
        } else {
            for p in r.problems { note("\(path):\(p.line): \(p.message)") }
            note("nothing was imported: \(r.problems.count) bad row(s)")
        }
        if !r.problems.isEmpty { exit(exitRefused) }
    case ("findings", _):
        var r = try client.call(.findings, Empty(), as: FindingsResult.self)
        if let s = args.value("severity") { r.findings = r.findings.filter { $0.severity == s } }
        if json { printJSON(r) } else {
            table(["SEVERITY", "FINDING", "DEVICE", "OWNER TO ACT", "CONTROL", "DETAIL"],
                  r.findings.map { [$0.severity, $0.kind, $0.device ?? "-", $0.owner, "\($0.control) (\($0.references.joined(separator: ", ")))", $0.detail] })
        }
        // Scripts (and monitoring) can tell a clean fleet from one with findings.
        if !r.findings.isEmpty { exit(exitPartial) }
    case ("report", _):
        let format = args.value("format") ?? (json ? "json" : "md")
        guard ["md", "json", "csv"].contains(format) else { fail("--format takes md, json or csv", exitUsage) }
        let r = try client.call(.report, Empty(), as: EvidenceReport.self)
        var text: String
        switch format {
        case "json":
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            text = String(decoding: try encoder.encode(r), as: UTF8.self) + "\n"
        case "csv": text = r.csv()
        default: text = r.markdown(time: { time($0) })
        }
        if let output = args.value("output") {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            note("wrote the evidence report to \(output)")
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    case ("review", "start"):
        let due = seconds("due") ?? 14 * 86400
        let r = try client.call(.reviewStart, ReviewStartParams(dueIn: due), as: ReviewView.self)
        if json { printJSON(r) } else { print("access review \(r.id) started: \(r.items.count) devices for their business owners, due \(time(r.dueAt))") }
    case ("review", "attest"):
        guard let decision = args.value("decision") else { fail("--decision keep|retire is required", exitUsage) }
        let reviewID: Int64
        if let text = args.value("review") { guard let v = Int64(text) else { fail("--review takes a number", exitUsage) }; reviewID = v } else {
            reviewID = try client.call(.reviewShow, ReviewRef(), as: ReviewView.self).id
        }
        let r = try client.call(.reviewAttest, ReviewAttestParams(review: reviewID, device: argument(2, "device id"), decision: decision, note: args.value("note")),
                                as: ReviewView.self)
        if json { printJSON(r) } else { print("attested \(words[2]): \(decision); \(r.unattested.count) device(s) still unattested in review \(r.id)") }
    case ("review", "show"):
        let ref = ReviewRef(review: args.value("review").flatMap(Int64.init))
        let r = try client.call(.reviewShow, ref, as: ReviewView.self)
        if json { printJSON(r) } else {
            print("access review \(r.id), started \(time(r.startedAt)) by \(r.startedBy), due \(time(r.dueAt))")
            table(["DEVICE", "BUSINESS OWNER", "DECISION", "BY", "AT"], r.items.map { [$0.device, $0.owner, $0.decision ?? "-", $0.decidedBy ?? "-", time($0.decidedAt)] })
            if !r.unattested.isEmpty { print("unattested: \(r.unattested.joined(separator: ", "))") }
        }
    default:
        fail("unknown command '\(words.joined(separator: " "))'\n\(globalUsage)", exitUsage)
    }
} catch let error as WireError {
    fail(error.description, error.code == WireError.Code.unauthorized.rawValue || error.code == WireError.Code.forbidden.rawValue ? exitNoPermission : exitRefused)
} catch let error as FileError {
    fail(error.description, exitUnavailable)
} catch let error as HTTPSClientError {
    fail(error.description, exitUnavailable)
} catch {
    fail("\(error)", exitRefused)
}
