import Foundation
import Testing

@testable import Controller
import Shared

/// Answers that grow with the fleet (findings, audit export) are encoded a
/// slice of entries at a time and written to the local socket a base64 slice
/// at a time; what the client reads back must be the same answer.
@Suite("Large admin answers: encoded and written in slices, read back whole")
struct LargeAnswerTests {
    static func findings(_ n: Int) -> FindingsResult {
        FindingsResult(generatedAt: 1_750_004_800, findings: (0..<n).map {
            FindingView(kind: "expired", severity: $0 % 2 == 0 ? "critical" : "high", device: $0 % 7 == 0 ? nil : "gw-\($0)", owner: "ops:ot-ops",
                        control: "ttl_enforced", references: ["NHI7", "PR.AA-01"],
                        detail: "certificate \($0) expired: \"quoted\", a/slash, é, \u{1}, " + String(repeating: "x", count: 200))
        })
    }

    @Test("findings and audit entries encode in slices to the very bytes the whole-value encoder writes", arguments: [0, 1, 999, 1000, 1001, 2500])
    func slicedEncodingIsIdentical(_ n: Int) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let r = Self.findings(n)
        #expect(WireCodec.encode(r) == Array(try encoder.encode(r)))
        let audit = AuditExport(entries: (0..<n).map {
            AuditEntry(seq: Int64($0), time: 1_750_004_800, actor: "uid:0(root)", action: "device.add", target: "gw-\($0)", outcome: "ok",
                       detail: "after=\"x\"", prevHash: String(repeating: "0", count: 64), hash: String(repeating: "f", count: 64))
        })
        #expect(WireCodec.encode(audit) == Array(try encoder.encode(audit)))
    }

    @Test("an answer of several MB crosses the local admin socket intact (base64 written in slices)")
    func socketEnvelope() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-large-\(UUID().uuidString.prefix(8)).sock").path
        let answer = Self.findings(12_000)  // about 4 MB of JSON: many base64 slices
        let server = AdminServer(path: path, allowedUIDs: [], log: Logger(component: "controller-test", minimum: .error), onRefused: { _ in },
                                 handler: { _, _ in AdminResponse(result: answer) })
        try server.start()
        defer { server.stop() }
        let got = try AdminClient(socketPath: path).call(.findings, Empty(), as: FindingsResult.self)
        #expect(got.generatedAt == answer.generatedAt)
        #expect(got.findings == answer.findings)
        // A refusal still travels as one encoded line.
        let refusing = AdminServer(path: path + "2", allowedUIDs: [], log: Logger(component: "controller-test", minimum: .error), onRefused: { _ in },
                                   handler: { _, _ in AdminResponse(error: WireError(.invalidCursor, "no")) })
        try refusing.start()
        defer { refusing.stop() }
        #expect(wireCode { _ = try AdminClient(socketPath: path + "2").call(.deviceList, DeviceListParams(cursor: "x"), as: DeviceListResult.self) }
                == "invalid_cursor")
    }
}
