import Foundation
import Testing

@testable import Controller
import Shared

private let auditor = AdminActor(name: "auditor-1", roles: [.auditor], auditName: "operator:auditor-1")

/// `device.list` in pages (keyset on the device id, opaque cursor): what an
/// operator walking the pages gets while the register changes, and what the
/// controller refuses.
@Suite("device.list pages: every device exactly once, bounded pages, refused inputs")
struct DeviceListPagingTests {
    func page<P: Encodable>(_ f: ControllerFixture, _ params: P) throws -> DeviceListResult {
        let response = f.admin.handle(.deviceList, params: WireCodec.encode(params), actor: auditor)
        if let error = response.error { throw error }
        return try WireCodec.decode(DeviceListResult.self, from: Array(try unwrapped(response.result, "result")), limit: 40 << 20)
    }

    /// Follows `nextCursor` until the last page; `between` runs after each page.
    func walk(_ f: ControllerFixture, limit: Int?, filters: DeviceListParams = DeviceListParams(),
              between: (Int) throws -> Void = { _ in }) throws -> (ids: [String], pages: [Int]) {
        var ids: [String] = [], sizes: [Int] = []
        var params = filters
        params.limit = limit
        repeat {
            let r = try page(f, params)
            ids += r.devices.map(\.id)
            sizes.append(r.devices.count)
            try between(sizes.count)
            params.cursor = r.nextCursor
            #expect(sizes.count < 1000, "the walk does not end")
            if sizes.count >= 1000 { break }
        } while params.cursor != nil
        return (ids, sizes)
    }

    func importCSV(_ f: ControllerFixture, _ ids: [String], site: (String) -> String = { _ in "plant-a" }) throws {
        var csv = "id,class,site,zone," + OwnerRole.allCases.map { "owner_\($0.rawValue)" }.joined(separator: ",") + "\n"
        for id in ids { csv += "\(id),sensor,\(site(id)),ot," + OwnerRole.allCases.map { allOwners[$0.rawValue] ?? "" }.joined(separator: ",") + "\n" }
        let r = try f.admin.csv.importCSV(CSVImportParams(csv: csv), actor: "test")
        try #require(r.problems.isEmpty && r.applied, "\(r.problems)")
    }

    @Test("pages of 4 over 25 devices: each once, in id order, full pages but the last, no cursor on the last page")
    func everyDeviceOnce() throws {
        let f = try ControllerFixture()
        let ids = (0..<25).map { String(format: "dev-%02d", ($0 * 7) % 25) }  // added out of order
        try importCSV(f, ids)
        let walked = try walk(f, limit: 4)
        #expect(walked.ids == ids.sorted())
        #expect(walked.pages == [4, 4, 4, 4, 4, 4, 1])
        // A page that exactly ends the register carries no cursor: no empty last round trip.
        #expect(try walk(f, limit: 5).pages == [5, 5, 5, 5, 5])
        #expect(try walk(f, limit: 25).pages == [25])
        #expect(try walk(f, limit: 5000).pages == [25])
    }

    @Test("devices added, changed and approved during the walk: every device present throughout appears exactly once, new ones at most once")
    func insertsBetweenPages() throws {
        let f = try ControllerFixture()
        let original = (0..<20).map { String(format: "dev-%02d", $0 * 5) }  // dev-00, dev-05, ... dev-95
        try importCSV(f, original)
        var added: [String] = []
        let walked = try walk(f, limit: 3) { n in
            // Before and after the cursor, and between two ids already listed or still to come.
            for id in [String(format: "dev-%02d", n * 5 + 1), "aaa-\(n)", "zzz-\(n)", String(format: "dev-%02d", 98 - n * 5)] {
                try f.add(id)
                added.append(id)
            }
            if n == 2 { _ = try f.approve("dev-90") }
        }
        let counts = Dictionary(walked.ids.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(counts.values.allSatisfy { $0 == 1 }, "listed twice: \(counts.filter { $0.value > 1 }.keys.sorted())")
        for id in original { #expect(counts[id] == 1, "\(id) missing") }
        #expect(walked.ids == walked.ids.sorted(), "not in id order")
        #expect(Set(walked.ids).isSubset(of: Set(original + added)))
        // Keyset semantics: an id after the page being read is listed, one before it is not.
        #expect(walked.ids.contains("zzz-1") && !walked.ids.contains("aaa-1"))
        // The changed device is listed once, as it was when its page was read (after the approval).
        let last = try page(f, DeviceListParams(limit: 1, cursor: DeviceListCursor.encode(after: "dev-89")))
        #expect(last.devices.map(\.id) == ["dev-90"] && last.devices.first?.state == "approved")
    }

    @Test("a page's views equal device.show's: owners, missing owners, the current certificate after a renewal")
    func viewsMatchShow() throws {
        let f = try ControllerFixture()
        let (_, first) = try f.enrolled("gw-1")
        f.clock.advance(3600)
        let renewed = try f.renew("gw-1", key: try PrivateKey.generateP256(), currentSerial: try #require(first.serial))
        try #require(renewed.status == "issued")
        try f.add("gw-2", owners: ["ops": "ot-ops"])
        try f.enrolled("gw-3")
        let listed = try walk(f, limit: 1)
        #expect(listed.ids == ["gw-1", "gw-2", "gw-3"])
        var views: [DeviceView] = []
        var cursor: String?
        repeat {
            let r = try page(f, DeviceListParams(limit: 2, cursor: cursor))
            views += r.devices
            cursor = r.nextCursor
        } while cursor != nil
        for v in views {
            let shown = try f.register.show(v.id)
            #expect(v.serial == shown.serial && v.notAfter == shown.notAfter && v.issuer == shown.issuer && v.issuedAt == shown.issuedAt, "\(v.id)")
            #expect(v.owners == shown.owners && v.missingOwners == shown.missingOwners && v.state == shown.state, "\(v.id)")
            #expect(v.certificates == nil, "a list carries no certificate history")
        }
        #expect(views.first?.serial == renewed.serial)
        #expect(views[1].missingOwners.count == 4 && views[1].serial == nil)
        // The whole-register helpers give the same devices as the pages.
        var paged: [String] = []
        try f.register.forEachPage(limit: 2) { paged += $0.map(\.id) }
        #expect(paged == (try f.register.list().map(\.id)))
    }

    @Test("without a limit a page holds 1,000 devices; the rest follows the cursor")
    func defaultLimit() throws {
        let f = try ControllerFixture()
        try importCSV(f, (0..<1001).map { String(format: "d-%04d", $0) })
        let first = try page(f, Empty())
        #expect(first.devices.count == DeviceListParams.defaultLimit)
        let cursor = try #require(first.nextCursor)
        let second = try page(f, DeviceListParams(cursor: cursor))
        #expect(second.devices.map(\.id) == ["d-1000"] && second.nextCursor == nil)
    }

    @Test("filters apply before paging: each page holds `limit` matching devices")
    func filtersWithPaging() throws {
        let f = try ControllerFixture()
        let ids = (0..<30).map { String(format: "s-%02d", $0) }
        try importCSV(f, ids, site: { Int($0.dropFirst(2))! % 3 == 0 ? "plant-b" : "plant-a" })
        _ = try f.approve("s-03")
        let b = try walk(f, limit: 4, filters: DeviceListParams(site: "plant-b"))
        #expect(b.ids == ids.filter { Int($0.dropFirst(2))! % 3 == 0 })
        #expect(b.pages == [4, 4, 2])
        #expect(try walk(f, limit: 2, filters: DeviceListParams(state: "approved")).ids == ["s-03"])
        #expect(try walk(f, limit: 2, filters: DeviceListParams(state: "registered", deviceClass: "sensor", site: "plant-b")).ids.count == 9)
        #expect(try walk(f, limit: 2, filters: DeviceListParams(deviceClass: "lite")).ids.isEmpty)
    }

    @Test("a limit out of 1...5000 is refused with bad_request, an unknown state too, and each refusal is audited",
          arguments: [0, -1, 5001, Int.max])
    func limitRefused(_ limit: Int) throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let refused = wireCode { _ = try page(f, DeviceListParams(limit: limit)) }
        #expect(refused == "bad_request")
        #expect(wireCode { _ = try page(f, DeviceListParams(state: "lost")) } == "bad_request")
        #expect(try f.sqlite("SELECT count(*) FROM audit WHERE action = 'device.list' AND outcome = 'bad_request' AND actor = 'operator:auditor-1'") == "2\n")
    }

    @Test("a cursor this controller did not issue is refused with invalid_cursor (HTTP 400) and audited", arguments: [
        "", "garbage", "v1.", "v1.!!!!", "v1.ZGV2LTAx=", "v2.ZGV2LTAx", "v1." + String(repeating: "A", count: 300), "v1.__8", "v1.AA",
    ])
    func cursorRefused(_ cursor: String) throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let response = f.admin.handle(.deviceList, params: WireCodec.encode(DeviceListParams(cursor: cursor)), actor: auditor)
        #expect(response.error?.code == "invalid_cursor", "\(cursor): \(String(describing: response.error))")
        #expect(response.error?.message.contains("nextCursor") == true)
        #expect(HTTPSAdminAPI.status(for: "invalid_cursor") == 400)
        #expect(try f.sqlite("SELECT count(*) FROM audit WHERE action = 'device.list' AND outcome = 'invalid_cursor'") == "1\n")
    }

    @Test("cursors round-trip any device id; a valid cursor past the last device gives an empty last page")
    func cursorRoundTrip() throws {
        for id in ["a", "gw-17.plant-a", String(repeating: "z", count: 63), "0.-9"] {
            #expect(try DeviceListCursor.decode(DeviceListCursor.encode(after: id)) == id)
            #expect(!DeviceListCursor.encode(after: id).contains("="))
        }
        let f = try ControllerFixture()
        try f.add("gw-1")
        let r = try page(f, DeviceListParams(cursor: DeviceListCursor.encode(after: "zzz")))
        #expect(r.devices.isEmpty && r.nextCursor == nil)
    }
}
