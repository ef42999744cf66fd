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
        // About 250 lanyardctl runs: at a lower priority, so the timing-sensitive agent suites running alongside keep their CPU.
        func ctl(_ name: String, _ args: [String]) throws -> TestProcess.Result {
            try TestProcess.run("/usr/bin/nice", ["-n", "10", "\(fleet.bin)/lanyardctl", "--server", server, "--cacert", fleet.bundle,
                                                  "--token-file", tokenFiles[name] ?? "/nonexistent"] + args)
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
            (["revoke", "--selector", "site=nowhere", "--reason", "superseded", "--dry-run"], ["ops", "secarch"]),
            (["campaign", "create", "--selector", "id=gw-r", "--reason", "rbac"], ["ops"]),
            (["campaign", "cancel", "cmp-nope"], ["ops"]),
            (["event", "firmware.updated", "--selector", "site=nowhere", "--reason", "rbac"], ["ops", "secarch"]),
            (["class", "set", "default", "--renewal-sla", "2h"], ["identity"]),
            // A bundle timeout the controller refuses: the role check comes first, nothing rotates.
            (["ca", "rotate", "--reason", "rbac", "--bundle-timeout", "1s", "--no-wait"], ["identity"]),
            (["ca", "retire", "--reason", "rbac"], ["identity"]),
            (["vendor", "set", "Acme", "--clauses", "issuance,rotation,revocation"], ["procurement"]),
            (["exception", "reject", "999"], ["business"]),
            (["review", "start", "--due", "1d"], ["identity"]),
            (["review", "attest", "gw-r", "--decision", "keep", "--review", "1"], ["business"]),
            (["operator", "add", "extra-op", "--role", "ops"], ["admin"]),
            (["operator", "remove", "no-such-operator"], ["admin"]),
            (["operator", "list"], ["admin", "auditor"]),
            (["audit", "verify"], ["admin", "auditor"]),
            (["audit", "export", "--output", "\(fleet.directory)/audit.jsonl"], ["admin", "auditor"]),
            (["device", "list"], all), (["device", "show", "gw-r"], all), (["status"], all), (["class", "list"], all),
            (["vendor", "list"], all), (["exception", "list"], all), (["whoami"], all), (["register", "export"], all),
            (["findings"], all), (["report", "--format", "csv"], all), (["review", "show", "--review", "1"], all), (["campaign", "list"], all),
            (["ca", "status"], all),
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

        // 04b — a CMDB file with one bad row: lanyardctl names the file and line, exits 1, and nothing is imported.
        let cmdb = "\(fleet.directory)/cmdb.csv"
        try "id,class,site,zone,owner_ops\nline-a,default,plant-a,ot,ot-ops\nline-b,default,plant-a,dmz,ot-ops\nline-c,default,plant-b,it,ot-ops\n"
            .write(toFile: cmdb, atomically: true, encoding: .utf8)
        let bad = try ctl("ot-ops", ["register", "import", cmdb])
        #expect(bad.exitCode == 1, "\(bad.stdout) \(bad.stderr)")
        #expect(bad.stderr.contains("cmdb.csv:3: bad_request: zone must be it or ot"), "\(bad.stderr)")
        let listed = try ctl("auditor-1", ["--json", "device", "list"])
        #expect(!listed.stdout.contains("line-a") && !listed.stdout.contains("line-c"), "a row was applied although line 3 is bad")
        try "id,class,site,zone,owner_ops\nline-a,default,plant-a,ot,ot-ops\nline-c,default,plant-b,it,ot-ops\n".write(toFile: cmdb, atomically: true, encoding: .utf8)
        let good = try ctl("ot-ops", ["register", "import", cmdb])
        #expect(good.succeeded && good.stdout.contains("2 new"), "\(good.stdout) \(good.stderr)")
        let filtered = try ctl("auditor-1", ["device", "list", "--site", "plant-b"])
        #expect(filtered.stdout.contains("line-c") && !filtered.stdout.contains("line-a"), "\(filtered.stdout)")

        // 04c — offboarding: once removed, an operator's token is refused.
        #expect(try ctl("root", ["operator", "remove", "buyers", "--reason", "left the company"]).succeeded)
        let removed = try ctl("buyers", ["whoami"])
        #expect(removed.exitCode == 77 && removed.stderr.contains("unauthorized"), "\(removed.stderr)")

        // 04d — client-certificate authentication: the operator makes its own key and CSR (openssl), the controller host signs it.
        let certDir = fleet.directory
        let req = try TestProcess.run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=auditor-1",
                                                  "-keyout", "\(certDir)/auditor.key", "-out", "\(certDir)/auditor.csr"])
        try #require(req.succeeded, "\(req.stderr)")
        let signed = try TestProcess.run("\(fleet.bin)/lanyard-controller", ["operator", "cert", "--config", "\(fleet.controllerDirectory)/controller.conf",
                                                                              "--name", "auditor-1", "--csr", "\(certDir)/auditor.csr", "--days", "7"])
        try #require(signed.succeeded, "\(signed.stderr)")
        try signed.stdout.write(toFile: "\(certDir)/auditor.pem", atomically: true, encoding: .utf8)
        let x509 = try TestProcess.run("openssl", ["x509", "-in", "\(certDir)/auditor.pem", "-noout", "-ext", "subjectAltName,extendedKeyUsage"])
        #expect(x509.stdout.contains("URI:spiffe://\(fleet.trustDomain)/operator/auditor-1") && x509.stdout.contains("TLS Web Client Authentication"), "\(x509.stdout)")
        func ctlCert(_ cert: String, _ key: String, _ args: [String]) throws -> TestProcess.Result {
            try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "--cert", cert, "--key", key] + args)
        }
        let byCert = try ctlCert("\(certDir)/auditor.pem", "\(certDir)/auditor.key", ["whoami"])
        #expect(byCert.succeeded && byCert.stdout.hasPrefix("auditor-1 (auditor)"), "\(byCert.stdout) \(byCert.stderr)")
        #expect(try ctlCert("\(certDir)/auditor.pem", "\(certDir)/auditor.key", ["audit", "verify"]).succeeded)
        #expect(try ctlCert("\(certDir)/auditor.pem", "\(certDir)/auditor.key", ["class", "set", "default", "--ttl", "2h"]).exitCode == 77)
        refusals["auditor-1", default: 0] += 1  // audited under the same operator as its token calls
        // Another certificate from the same CA (the controller's own MQTT identity) is not an operator's.
        #expect(try ctlCert("\(fleet.pki)/controller.pem", "\(fleet.pki)/controller.key", ["whoami"]).exitCode == 77)
        // No certificate for someone who is not an operator.
        let stranger = try TestProcess.run("\(fleet.bin)/lanyard-controller", ["operator", "cert", "--config", "\(fleet.controllerDirectory)/controller.conf",
                                                                                "--name", "mallory", "--csr", "\(certDir)/auditor.csr"])
        #expect(!stranger.succeeded)

        // 05 — no token or a wrong one: exit 77, audited as unauthorized.
        let anonymous = try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "status"],
                                            environment: ["LANYARD_TOKEN": "lyo_not-a-real-token"])
        #expect(anonymous.exitCode == 77, "\(anonymous.stderr)")

        // 05b — a caller without a valid token is refused on the headers: a 100 MB body announced and never sent is not waited for.
        let early = try TestProcess.run("python3", [Broker.repositoryRoot + "/Tests/IntegrationTests/python/early_refusal.py", String(try #require(fleet.apiPort)),
                                                    fleet.bundle], timeout: 20)
        #expect(early.stdout.hasPrefix("HTTP/1.1 401"), "\(early.stdout) \(early.stderr)")

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

    @Test("lanyardctl device list walks the controller's pages over the socket and HTTPS: every device once, as one table or one JSON document; bad page inputs are refused with stable codes")
    func deviceListPages() throws {
        let fleet = try Fleet(ttl: "1h", apiPort: FreePort.allocate())
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        let server = "https://127.0.0.1:\(try #require(fleet.apiPort))"

        // 01 — 23 devices from a CMDB file, added out of id order; those whose number is a multiple of 3 at plant-b.
        let ids = (0..<23).map { String(format: "pg-%02d", ($0 * 5) % 23) }
        func plantB(_ id: String) -> Bool { Int(id.dropFirst(3))! % 3 == 0 }
        let csv = "\(fleet.directory)/fleet.csv"
        try ("id,class,site,owner_ops\n" + ids.map { "\($0),default,\(plantB($0) ? "plant-b" : "plant-a"),ot-ops\n" }.joined())
            .write(toFile: csv, atomically: true, encoding: .utf8)
        let imported = try fleet.ctl(["register", "import", csv])
        try #require(imported.succeeded, "\(imported.stderr)")
        func listed(_ result: TestProcess.Result) throws -> [String] {
            try #require(result.succeeded, "\(result.stdout) \(result.stderr)")
            let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            return (document["devices"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        }

        // 02 — JSON over the socket in pages of 5 (5 requests): one document, every device once, in id order; the same as in one page.
        let paged = try fleet.ctl(["--json", "device", "list", "--page-size", "5"])
        #expect(try listed(paged) == ids.sorted())
        #expect(try fleet.ctl(["--json", "device", "list"]).stdout == paged.stdout)
        #expect(paged.stderr.isEmpty, "no progress on stderr when it is not a terminal: \(paged.stderr)")

        // 03 — the table in pages of 4: one header, then each device once.
        let table = try fleet.ctl(["device", "list", "--page-size", "4"])
        try #require(table.succeeded, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("DEVICE") == true && lines.filter { $0.hasPrefix("DEVICE") }.count == 1, "\(table.stdout)")
        #expect(lines.dropFirst().map { String($0.prefix(5)) } == ids.sorted())

        // 04 — filters go to the controller and hold across pages; no match is an empty document.
        #expect(try listed(try fleet.ctl(["--json", "device", "list", "--site", "plant-b", "--page-size", "3"])) == ids.sorted().filter(plantB))
        #expect(try listed(try fleet.ctl(["--json", "device", "list", "--state", "active", "--page-size", "3"])) == [])
        let unknownState = try fleet.ctl(["device", "list", "--state", "lost"])
        #expect(unknownState.exitCode == 1 && unknownState.stderr.contains("bad_request"), "\(unknownState.stderr)")

        // 05 — over HTTPS as an auditor (read-only role), in pages of 7.
        let root = try TestProcess.check("\(fleet.bin)/lanyard-controller", ["operator", "add", "--config", "\(fleet.controllerDirectory)/controller.conf",
                                                                             "--name", "root", "--role", "admin"])
        let rootToken = "\(fleet.directory)/root.token"
        try AtomicFile.write(root.stdout.trimmed(), to: rootToken, mode: 0o600)
        let made = try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "--token-file", rootToken,
                                                                   "operator", "add", "pager", "--role", "auditor"])
        try #require(made.succeeded, "\(made.stderr)")
        let token = "\(fleet.directory)/pager.token"
        try AtomicFile.write(made.stdout.trimmed(), to: token, mode: 0o600)
        let overHTTPS = try TestProcess.run("\(fleet.bin)/lanyardctl", ["--server", server, "--cacert", fleet.bundle, "--token-file", token,
                                                                        "--json", "device", "list", "--page-size", "7"])
        #expect(try listed(overHTTPS) == ids.sorted())

        // 06 — the raw API: a page and its cursor, then refusals with their codes and HTTP statuses.
        let header = "\(fleet.directory)/auth.header"
        try AtomicFile.write("Authorization: Bearer \(try String(contentsOfFile: token, encoding: .utf8).trimmed())", to: header, mode: 0o600)
        func post(_ body: String) throws -> (status: String, json: [String: Any]) {
            let out = "\(fleet.directory)/answer.json"
            let r = try TestProcess.run("curl", ["-sS", "-o", out, "-w", "%{http_code}", "--cacert", fleet.bundle, "-H", "@\(header)",
                                                 "-H", "Content-Type: application/json", "-d", body, "\(server)/v1/device.list"])
            let answer = (try? Data(contentsOf: URL(fileURLWithPath: out))) ?? Data()
            return (r.stdout, (try? JSONSerialization.jsonObject(with: answer) as? [String: Any]) ?? [:])
        }
        let first = try post(#"{"limit":10}"#)
        #expect(first.status == "200")
        #expect((first.json["devices"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == Array(ids.sorted().prefix(10)))
        let cursor = try #require(first.json["nextCursor"] as? String)
        let second = try post(#"{"limit":10,"cursor":"\#(cursor)"}"#)
        #expect((second.json["devices"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == Array(ids.sorted()[10..<20]))
        let third = try post(#"{"limit":10,"cursor":"\#(try #require(second.json["nextCursor"] as? String))"}"#)
        #expect((third.json["devices"] as? [[String: Any]])?.count == 3 && third.json["nextCursor"] == nil, "\(third.json)")
        for (body, status, code) in [(#"{"cursor":"not-a-cursor"}"#, "400", "invalid_cursor"), (#"{"cursor":"v1.%%%"}"#, "400", "invalid_cursor"),
                                     (#"{"limit":0}"#, "400", "bad_request"), (#"{"limit":5001}"#, "400", "bad_request"),
                                     (#"{"limit":"ten"}"#, "400", "bad_request")] {
            let refused = try post(body)
            #expect(refused.status == status && (refused.json["error"] as? [String: Any])?["code"] as? String == code, "\(body): \(refused)")
        }

        // 07 — a page size out of bounds is a usage error, caught before any call.
        #expect(try fleet.ctl(["device", "list", "--page-size", "0"]).exitCode == 64)
        #expect(try fleet.ctl(["device", "list", "--page-size", "5001"]).exitCode == 64)
        passed = true
    }

    @Test("every command has --help (exit 0); usage errors exit 64; an unreachable server exits 69")
    func helpAndExitCodes() throws {
        let bin = Fleet.binDirectory + "/lanyardctl"
        let commands = ["device add", "device approve", "device list", "device show", "device update", "device suspend", "device resume", "device retire",
                        "device transfer", "device replace", "revoke", "status", "audit verify", "audit export", "class list", "class set", "vendor list",
                        "vendor set", "exception request", "exception approve", "exception reject", "exception list", "operator add", "operator remove", "operator list",
                        "whoami", "register export", "register import", "findings", "report", "review start", "review attest", "review show",
                        "campaign create", "campaign start", "campaign pause", "campaign resume", "campaign cancel", "campaign status", "campaign list", "event", "ca"]
        for command in commands {
            let help = try TestProcess.run(bin, command.split(separator: " ").map(String.init) + ["--help"])
            #expect(help.exitCode == 0 && help.stdout.hasPrefix("usage: lanyardctl \(command)"), "\(command) --help: \(help.stdout) \(help.stderr)")
        }
        #expect(try TestProcess.run(bin, ["--help"]).stdout.contains("Exit status"))
        #expect(try TestProcess.run(bin, ["device", "frobnicate"]).exitCode == 64)
        #expect(try TestProcess.run(bin, ["device", "add", "gw-1"]).exitCode == 64)  // --class missing
        #expect(try TestProcess.run(bin, ["--server", "https://127.0.0.1:1", "status"]).exitCode == 64)  // no --cacert
        let unreachable = try TestProcess.run(bin, ["--server", "https://127.0.0.1:\(FreePort.allocate())", "--cacert", "/dev/null", "status"],
                                              environment: ["LANYARD_TOKEN": "lyo_x"])
        #expect(unreachable.exitCode == 69, "\(unreachable.stderr)")
    }
}
