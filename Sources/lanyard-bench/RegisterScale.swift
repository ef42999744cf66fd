import Controller
import Foundation
import Shared

/// `lanyard-bench --register N`: a register of N devices (imported as one
/// CSV, as a CMDB sync would, each with a certificate row) and how long the
/// operations over all of it take: list, a filtered list, CSV export,
/// findings and the evidence report.
/// With `databasePath` the register is built in that file (a controller's,
/// e.g. for the start-up figures of scripts/bench-startup.sh) and kept.
func registerScale(_ count: Int, jsonPath: String?, databasePath: String? = nil) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-bench-reg-\(UUID().uuidString.prefix(8))").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let store = try Store(path: databasePath ?? "\(dir)/lanyard.db")
    let policy = DeviceClassPolicy(name: "default", ttl: .seconds(86400), maxTTL: .seconds(30 * 86400), renewAt: 2.0 / 3.0,
                                   requiredOwners: OwnerRole.allCases, keyAlgorithms: ["P-256"], rotateKeys: true)
    let register = try DeviceRegister(store: store, classes: ["default": policy], clock: { Date() })

    var csv = "id,class,site,zone,tags,owner_identity,owner_secarch,owner_ops,owner_procurement,owner_business\n"
    for i in 0..<count {
        csv += String(format: "dev-%07d,default,site-%d,%@,line-%d,pki,sec,ops-%d,buyers,biz-%d\n", i, i % 50, i % 3 == 0 ? "it" : "ot", i % 20, i % 10, i % 100)
    }
    print("importing \(count) devices as one CSV ...")
    var imported: CSVImportResult?
    let importTime = try measure { imported = try RegisterCSV(register: register).importCSV(CSVImportParams(csv: csv), actor: "bench") }
    guard imported?.applied == true else { fatalError("import refused: \(imported?.problems.prefix(3) ?? [])") }
    let now = Int64(Date().timeIntervalSince1970)
    try store.transaction { db in
        for i in 0..<count {
            let id = String(format: "dev-%07d", i)
            try db.query("""
                INSERT INTO certificates(serial, device_id, kind, request_id, key_fingerprint, not_before, not_after, issued_at, chain_pem, issuer, policy_version)
                VALUES (?, ?, 'enroll', ?, ?, ?, ?, ?, '', 'Lanyard Issuing CA 1 (bench)', 1)
                """, [.text(String(format: "%032x", i)), .text(id), .text("bench-\(i)-request"), .text(String(format: "fp%062x", i)),
                      .int(now - 300), .int(now + 86400), .int(now)])
            try db.query("UPDATE devices SET state = 'active', last_seen = ? WHERE id = ?", [.int(now), .text(id)])
        }
    }
    var listed = 0, filtered = 0, exported = 0, found = 0
    let list = try measure { listed = try register.list().count }
    let filter = try measure { filtered = try register.list().filter { $0.attributes?.site == "site-7" && $0.attributes?.zone == "ot" }.count }
    let export = try measure { exported = try RegisterCSV(register: register).export().utf8.count }
    let findings = FleetFindings(store: store, register: register, currentIssuer: "Lanyard Issuing CA 1 (bench)", clock: { Date() })
    let findingsTime = try measure { found = try findings.findings().count }
    var controls = 0
    let report = try measure {
        controls = try EvidenceReportBuilder(findings: findings, review: AccessReview(store: store, clock: { Date() }), trustDomain: "bench.lanyard")
            .build().controls.count
    }
    let rows: [(String, Double, String)] = [
        ("CSV import (validate + apply, one transaction)", importTime.wall, "\(count) rows"),
        ("device list", list.wall, "\(listed) devices"),
        ("filtered list (site and zone)", filter.wall, "\(filtered) devices"),
        ("CSV export", export.wall, "\(exported / 1024) KiB"),
        ("findings", findingsTime.wall, "\(found) findings"),
        ("evidence report", report.wall, "\(controls) controls"),
    ]
    print("\n| register of \(count) devices (\(ProcessInfo.processInfo.activeProcessorCount) cores) | wall time | result |")
    print("|---|---|---|")
    for r in rows { print(String(format: "| %@ | %.2f s | %@ |", r.0, r.1, r.2)) }
    if let jsonPath {
        var json: [String: Any] = ["count": count, "command": "lanyard-bench --register \(count)", "date": ISO8601DateFormatter().string(from: Date())]
        for (name, seconds, _) in rows { json[name] = seconds }
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: jsonPath))
    }
}
