import Foundation
import Shared
import Testing
import TestSupport

/// Role-based access over the real HTTPS admin API (libmicrohttpd, TLS with
/// the controller's PKI), driven by the real `lanyardctl` binary as each kind
/// of operator.
@Suite("HTTPS admin API: each role can do exactly its operations", .serialized)
struct AdminAPITests {
    /// Role → operator name. The business operator is the owner Fleet.register names, so it may decide that device's exceptions.
    static let operators: [(role: String, name: String)] = [
        ("identity", "pki"), ("secarch", "sec-arch"), ("ops", "ot-ops"), ("procurement", "buyers"), ("business", "plant"),
        ("auditor", "auditor-1"), ("admin", "root"),
    ]

    @Test("every role × every command through lanyardctl over HTTPS: allowed ones pass the role check, the others exit 77 and are audited")
    func rbacMatrix() async throws {
        let fleet = try Fleet(ttl: "1h", apiPort: FreePort.allocate())
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let server = "https://127.0.0.1:\(try #require(fleet.apiPort))"

        // 01 — the first admin is made locally on the controller host; it creates the other operators over HTTPS.
        var tokenFiles: [String: String] = [:]
        let bootstrap = try TestProcess.check("\(fleet.bin)/lanyard-controller", ["operator", "add", "--config", "\(fleet.controllerDirectory)/controller.conf",
                                                                                  "--name", "root", "--role", "admin"])
        func saveToken(_ name: String, _ token: String) throws {
            let path = "\(fleet.directory)/\(name).token"
            try AtomicFile.write(token.trimmed(), to: path, mode: 0o600)
            tokenFiles[name] = path
        }
        try saveToken("root", bootstrap.stdout)
        func ctl(_ name: String, _ args: [String]) throws -> TestProcess.Result {
            try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "--token-file", tokenFiles[name] ?? "/nonexistent"] + args)
        }
        for (role, name) in Self.operators where name != "root" {
            let made = try ctl("root", ["operator", "add", name, "--role", role])
            try #require(made.succeeded, "operator add \(name): \(made.stderr)")
            try saveToken(name, made.stdout)
        }
        let whoami = try ctl("plant", ["--json", "whoami"])
        #expect(whoami.stdout.contains("\"business\""), "\(whoami.stdout) \(whoami.stderr)")

        // 02 — data the commands act on: a registered device with all owners, and a pending exception on it requested by ops.
        try fleet.register("gw-r")
        let csv = "\(fleet.directory)/import.csv"
        try "id,class,owner_ops\nrbac-csv,default,ot-ops\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let requested = try ctl("ot-ops", ["--json", "exception", "request", "--device", "gw-r", "--control", "key_reuse", "--justification", "legacy PLC",
                                           "--compensating", "OT VLAN", "--expires", "30d"])
        try #require(requested.succeeded, "\(requested.stderr)")
        let exceptionID = try #require((try JSONSerialization.jsonObject(with: Data(requested.stdout.utf8)) as? [String: Any])?["id"] as? Int)

        // 03 — the matrix, written here independently of the controller's table.
        let all = Set(Self.operators.map(\.role))
        let commands: [(args: [String], roles: Set<String>)] = [
            (["device", "add", "rbac-x", "--class", "default", "--owner", "ops=ot-ops"], ["ops"]),
            (["device", "approve", "gw-r"], ["ops"]),
            (["device", "update", "gw-r", "--site", "plant-a"], ["ops"]),
            (["device", "suspend", "gw-r"], ["ops"]),
            (["device", "resume", "gw-r"], ["ops"]),
            (["device", "retire", "gw-r"], ["ops"]),
            (["device", "transfer", "gw-r", "--owner", "procurement=buyers"], ["ops"]),
            (["device", "replace", "gw-r", "--with", "rbac-x"], ["ops"]),
            (["register", "import", csv, "--dry-run"], ["ops"]),
            (["exception", "request", "--device", "gw-r", "--control", "key_reuse", "--justification", "j", "--compensating", "c", "--expires", "1d"], ["ops"]),
            (["revoke", "no-such-device", "--reason", "superseded"], ["ops", "secarch"]),
            (["class", "set", "default", "--renewal-sla", "2h"], ["identity"]),
            (["vendor", "set", "Acme", "--clauses", "issuance,rotation,revocation"], ["procurement"]),
            (["exception", "reject", "999"], ["business"]),
            (["review", "start", "--due", "1d"], ["identity"]),
            (["review", "attest", "gw-r", "--decision", "keep", "--review", "1"], ["business"]),
            (["operator", "add", "extra-op", "--role", "ops"], ["admin"]),
            (["operator", "list"], ["admin", "auditor"]),
            (["audit", "verify"], ["admin", "auditor"]),
            (["audit", "export", "--output", "\(fleet.directory)/audit.jsonl"], ["admin", "auditor"]),
            (["device", "list"], all), (["device", "show", "gw-r"], all), (["status"], all), (["class", "list"], all),
            (["vendor", "list"], all), (["exception", "list"], all), (["whoami"], all), (["register", "export"], all),
            (["findings"], all), (["report", "--format", "csv"], all), (["review", "show", "--review", "1"], all),
        ]
        var refusals: [String: Int] = [:]
        for (role, name) in Self.operators {
            for command in commands {
                let result = try ctl(name, command.args)
                let what = "\(role) \(command.args.prefix(2).joined(separator: " "))"
                if command.roles.contains(role) {
                    #expect(result.exitCode != 77 && !result.timedOut, "\(what) must pass the role check: exit \(result.exitCode) \(result.stderr)")
                } else {
                    #expect(result.exitCode == 77, "\(what) must be refused with exit 77: exit \(result.exitCode) \(result.stdout) \(result.stderr)")
                    #expect(result.stderr.contains("forbidden"), "\(what): \(result.stderr)")
                    refusals[name, default: 0] += 1
                }
            }
        }

        // 04 — the business owner, who did not request it, approves the pending exception; it is approved.
        let approved = try ctl("plant", ["--json", "exception", "approve", String(exceptionID), "--reason", "accepted"])
        #expect(approved.succeeded && approved.stdout.contains("\"approved\""), "\(approved.stdout) \(approved.stderr)")

        // 05 — no token or a wrong one: exit 77, audited as unauthorized.
        let anonymous = try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "status"],
                                            environment: ["LANYARD_TOKEN": "lyo_not-a-real-token"])
        #expect(anonymous.exitCode == 77, "\(anonymous.stderr)")

        // 06 — every refusal is in the audit trail, under the operator who tried.
        let export = try ctl("auditor-1", ["audit", "export"])
        try #require(export.succeeded, "\(export.stderr)")
        let entries = export.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        for (name, count) in refusals {
            let audited = entries.filter { ($0["actor"] as? String)?.hasPrefix("operator:\(name)(") == true && $0["outcome"] as? String == "forbidden" }.count
            #expect(audited == count, "\(name): \(count) refused calls, \(audited) audited")
        }
        #expect(entries.contains { $0["action"] as? String == "admin.call" && $0["outcome"] as? String == "unauthorized" })
        // Tokens never reach the log.
        for (_, path) in tokenFiles {
            let token = try String(contentsOfFile: path, encoding: .utf8)
            #expect(!fleet.controllerLog().contains(token))
        }
        passed = true
    }
}
