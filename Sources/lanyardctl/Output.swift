import Foundation
import Shared

// Exit statuses scripts can rely on (docs/admin-api.md).
let exitRefused: Int32 = 1, exitPartial: Int32 = 2, exitUsage: Int32 = 64, exitUnavailable: Int32 = 69, exitNoPermission: Int32 = 77

func fail(_ message: String, _ status: Int32) -> Never {
    FileHandle.standardError.write(Data("lanyardctl: \(message)\n".utf8))
    exit(status)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
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

/// `2026-12-31`, a Unix time, or a duration from now (`30d`).
func parseTime(_ text: String, now: Date = Date()) -> Int64? {
    if let d = ConfigReader.parseDuration(text) { return Int64(now.timeIntervalSince1970) + d.seconds }
    if let t = Int64(text) { return t }
    let parts = text.split(separator: "-").compactMap { Int($0) }
    guard parts.count == 3, text.count == 10 else { return nil }
    var c = DateComponents()
    (c.year, c.month, c.day) = (parts[0], parts[1], parts[2])
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar.date(from: c).map { Int64($0.timeIntervalSince1970) }
}

func showDevice(_ d: DeviceView) {
    print("device      \(d.id)")
    print("class       \(d.deviceClass)")
    print("state       \(d.state)\(d.reportedState.map { " (agent reports \($0))" } ?? "")")
    for role in OwnerRole.allCases { print("owner       \(role.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0))\(d.owners[role.rawValue] ?? "(missing)")") }
    if let a = d.attributes {
        print("vendor      \(a.vendor ?? "-")  model \(a.model ?? "-")  hw serial \(a.hardwareSerial ?? "-")  firmware \(a.firmware ?? "-")")
        print("site        \(a.site ?? "-")  zone \(a.zone ?? "-")  tags \((a.tags ?? []).joined(separator: ",").isEmpty ? "-" : (a.tags ?? []).joined(separator: ","))  bootstrap \(a.bootstrapMethod ?? "-")")
    }
    print("serial      \(d.serial ?? "-")\(d.issuer.map { " (issuer \($0))" } ?? "")")
    print("not after   \(time(d.notAfter))")
    print("last seen   \(time(d.lastSeen))")
    if let r = d.rotationRequired { print("rotation    required after \(r)") }
    if let revoked = d.revokedAt { print("revoked     \(time(revoked)) \(d.revocationReason ?? "")") }
    if let retired = d.retiredAt { print("retired     \(time(retired))") }
    if let old = d.replaces { print("replaces    \(old)") }
    if let new = d.replacedBy { print("replaced by \(new)") }
    if let certs = d.certificates, !certs.isEmpty {
        print("certificates:")
        table(["SERIAL", "KIND", "ISSUED", "NOT AFTER", "REVOKED"],
              certs.map { [$0.serial, $0.kind, time($0.issuedAt), time($0.notAfter), $0.revokedAt.map { time($0) } ?? "-"] })
    }
}

func duration(_ seconds: Int64) -> String {
    if seconds % 86400 == 0 { return "\(seconds / 86400)d" }
    if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
    if seconds % 60 == 0 { return "\(seconds / 60)m" }
    return "\(seconds)s"
}
