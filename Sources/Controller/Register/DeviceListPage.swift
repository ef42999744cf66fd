import Foundation
import Shared

/// `device.list` one page at a time (keyset paging on the device id, the
/// register's primary key): a page is three indexed queries whatever its
/// position in the register, and the controller never holds more than one
/// page of views, so listing 100,000 devices no longer costs hundreds of MB
/// (docs/benchmarks.md §10.6).
extension DeviceRegister {
    /// One page of the devices matching the filters, read in one snapshot.
    package func page(_ params: DeviceListParams) throws -> DeviceListResult {
        let limit = try DeviceListCursor.validLimit(params.limit)
        let after = try params.cursor.map(DeviceListCursor.decode)
        if let state = params.state, DeviceState(rawValue: state) == nil {
            throw WireError(.badRequest, "state must be one of \(DeviceState.allCases.map(\.rawValue).joined(separator: ", ")); got '\(state.prefix(40))'")
        }
        return try store.read { db in try page(db, after: after, limit: limit, state: params.state, deviceClass: params.deviceClass, site: params.site) }
    }

    /// Up to `limit` devices with an id after `after`, in id order; `nextCursor` is set when the page is full.
    func page(_ db: SQLiteConnection, after: String?, limit: Int, state: String? = nil, deviceClass: String? = nil, site: String? = nil) throws -> DeviceListResult {
        var conditions: [String] = [], arguments: [SQLValue] = []
        if let after { conditions.append("id > ?"); arguments.append(.text(after)) }
        if let state { conditions.append("state = ?"); arguments.append(.text(state)) }
        if let deviceClass { conditions.append("class = ?"); arguments.append(.text(deviceClass)) }
        if let site { conditions.append("site = ?"); arguments.append(.text(site)) }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        // One row more than the page tells whether another page follows, so the last page carries no cursor.
        let rows = try db.query(DeviceRegister.deviceColumns + filter + " ORDER BY id LIMIT ?", arguments + [.int(Int64(limit) + 1)])
        let pageRows = rows.prefix(limit)
        guard !pageRows.isEmpty else { return DeviceListResult(devices: []) }
        // The page's owners and certificates: unfiltered, the id range of the page holds exactly its
        // devices (one range scan of each index); filtered, it may hold many others, so the ids are named.
        let selection: String, ids: [SQLValue]
        if state == nil && deviceClass == nil && site == nil {
            selection = "device_id BETWEEN ? AND ?"
            ids = [.text(pageRows.first?[0].text ?? ""), .text(pageRows.last?[0].text ?? "")]
        } else {
            ids = pageRows.map { .text($0[0].text ?? "") }
            selection = "device_id IN (" + Array(repeating: "?", count: ids.count).joined(separator: ",") + ")"
        }
        var owners: [String: [String: String]] = [:]
        try db.forEachRow("SELECT device_id, role, owner FROM owners WHERE \(selection)", ids) { o in
            owners[o[0].text ?? "", default: [:]][o[1].text ?? ""] = o[2].text ?? ""
        }
        // Ordered by issue time within a device, so the last row per device is its current certificate.
        var latest: [String: SQLRow] = [:]
        try db.forEachRow("""
            SELECT device_id, serial, not_after, issuer, not_before, issued_at FROM certificates
            WHERE \(selection) ORDER BY device_id, issued_at, rowid
            """, ids) { c in
            latest[c[0].text ?? ""] = c
        }
        let devices = pageRows.map { row in
            let id = row[0].text ?? ""
            return makeView(row, owners: owners[id] ?? [:], latestCertificate: latest[id].map { Array($0.dropFirst()) })
        }
        let more = rows.count > limit
        return DeviceListResult(devices: devices, nextCursor: more ? DeviceListCursor.encode(after: devices[devices.count - 1].id) : nil)
    }

    /// Every device, page by page in one read snapshot: the same answer as
    /// `list()` without holding every owner and certificate row at once.
    package func forEachPage(limit: Int = DeviceListParams.maxLimit, _ body: ([DeviceView]) throws -> Void) throws {
        try store.read { db in
            var after: String?
            repeat {
                let page = try page(db, after: after, limit: limit)
                if !page.devices.isEmpty { try body(page.devices) }
                after = page.nextCursor == nil ? nil : page.devices.last?.id
            } while after != nil
        }
    }
}

/// The opaque cursor of `device.list`: `v1.` and the base64url of the last
/// device id of the page. Clients pass it back unchanged; anything else is
/// refused with `invalid_cursor`.
package enum DeviceListCursor {
    static let prefix = "v1."
    static let maxLength = 256

    package static func encode(after id: String) -> String {
        prefix + Data(id.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    package static func decode(_ cursor: String) throws -> String {
        func refuse(_ why: String) -> WireError {
            WireError(.invalidCursor, "cursor '\(cursor.prefix(40))' \(why); pass the nextCursor of the previous page unchanged, or none to start again")
        }
        guard cursor.utf8.count <= maxLength else { throw refuse("is longer than \(maxLength) bytes") }
        guard cursor.hasPrefix(prefix) else { throw refuse("was not issued by this controller") }
        var text = String(cursor.dropFirst(prefix.count))
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw refuse("is not base64url")
        }
        text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        text += String(repeating: "=", count: (4 - text.count % 4) % 4)
        guard let data = Data(base64Encoded: text), let id = String(data: data, encoding: .utf8), !id.isEmpty,
              !id.unicodeScalars.contains(where: { $0.value < 0x20 }) else { throw refuse("does not decode") }
        return id
    }

    package static func validLimit(_ limit: Int?) throws -> Int {
        guard let limit else { return DeviceListParams.defaultLimit }
        guard (1...DeviceListParams.maxLimit).contains(limit) else {
            throw WireError(.badRequest, "limit must be between 1 and \(DeviceListParams.maxLimit); got \(limit)")
        }
        return limit
    }
}
