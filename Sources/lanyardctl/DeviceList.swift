import Foundation
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// `lanyardctl device list`: walks `device.list` page by page (the
/// controller's cursor) and prints each page as it arrives, so neither side
/// holds the whole register. The filters go to the controller and are applied
/// here again, for a controller older than paging (it ignores them and
/// answers with every device in one page without a cursor).
func listDevices() throws {
    var pageSize: Int?
    if let text = args.value("page-size") {
        guard let n = Int(text), (1...DeviceListParams.maxLimit).contains(n) else {
            fail("--page-size takes a number from 1 to \(DeviceListParams.maxLimit)", exitUsage)
        }
        pageSize = n
    }
    let state = args.value("state"), deviceClass = args.value("class"), site = args.value("site")
    let printer = DeviceListPrinter(json: json)
    let progress = !args.flag("no-progress") && isatty(STDERR_FILENO) == 1
    var cursor: String?
    var pages = 0, listed = 0
    defer { if progress && pages > 1 { note("\r\u{1B}[K" + "listed \(listed) devices in \(pages) pages") } }
    repeat {
        let page = try client.call(.deviceList, DeviceListParams(limit: pageSize, cursor: cursor, state: state, deviceClass: deviceClass, site: site),
                                   as: DeviceListResult.self)
        let devices = page.devices.filter {
            (state == nil || $0.state == state) && (deviceClass == nil || $0.deviceClass == deviceClass) && (site == nil || $0.attributes?.site == site)
        }
        printer.write(devices)
        pages += 1
        listed += devices.count
        if progress && page.nextCursor != nil { FileHandle.standardError.write(Data("\r\u{1B}[Klisting devices: \(listed)…".utf8)) }
        // A cursor that does not move would loop forever: refuse it rather than trust it.
        guard page.nextCursor == nil || page.nextCursor != cursor else { throw WireError(.internal, "the controller returned the same cursor twice") }
        cursor = page.nextCursor
    } while cursor != nil
    printer.finish()
}

/// Prints devices a page at a time: the table's columns grow when a later
/// page has a wider cell (they never shrink), the JSON is the same document
/// as one `DeviceListResult` (`{"devices": [...]}`), written as it goes.
final class DeviceListPrinter {
    private let json: Bool
    private var widths: [Int] = []
    private var started = false
    private var count = 0
    private let encoder: JSONEncoder
    static let jsonHead = "{\n  \"devices\" : [\n"
    static let header = ["DEVICE", "CLASS", "STATE", "AGENT", "SITE", "ZONE", "SERIAL", "NOT AFTER", "MISSING OWNERS"]

    init(json: Bool) {
        self.json = json
        encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    }

    func write(_ devices: [DeviceView]) {
        var out = ""
        if json {
            if !started { out += DeviceListPrinter.jsonHead }
            // The page encoded as the one-page document, its devices cut out: already indented as in the whole document.
            let head = Array(DeviceListPrinter.jsonHead.utf8), tail = Array("\n  ]\n}".utf8)
            if !devices.isEmpty, let page = try? encoder.encode(DeviceListResult(devices: devices)) {
                let bytes = Array(page)
                if bytes.starts(with: head) && bytes.reversed().starts(with: tail.reversed()) && bytes.count >= head.count + tail.count {
                    out += (count > 0 ? ",\n" : "") + String(decoding: bytes[head.count..<(bytes.count - tail.count)], as: UTF8.self)
                } else {
                    // Another layout (a Foundation change): each device indented by hand, slower but the same document.
                    for (i, d) in devices.enumerated() {
                        let text = String(decoding: (try? encoder.encode(d)) ?? Data("{}".utf8), as: UTF8.self)
                        out += (count + i > 0 ? ",\n" : "") + text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
                    }
                }
                count += devices.count
            }
        } else {
            let rows = devices.map {
                [$0.id, $0.deviceClass, $0.state, $0.reportedState ?? "-", $0.attributes?.site ?? "-", $0.attributes?.zone ?? "-",
                 $0.serial ?? "-", time($0.notAfter), $0.missingOwners.isEmpty ? "-" : $0.missingOwners.joined(separator: ",")]
            }
            if widths.isEmpty { widths = DeviceListPrinter.header.map(\.count) }
            for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
            for row in (started ? [] : [DeviceListPrinter.header]) + rows { out += line(row) + "\n" }
        }
        started = true
        emit(out)
    }

    /// Straight to fd 1, a page at a time. When the reader has gone
    /// (`lanyardctl device list | head`), stop as a Unix filter does: by
    /// SIGPIPE (ignored for the admin calls, so raised here by hand).
    private func emit(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                signal(SIGPIPE, SIG_DFL)
                raise(SIGPIPE)
                exit(exitRefused)
            }
            bytes = bytes.dropFirst(n)
        }
    }

    func finish() {
        if json { emit((started ? (count > 0 ? "\n" : "") : DeviceListPrinter.jsonHead) + "  ]\n}\n") }
        else if !started { write([]) }
    }

    private func line(_ row: [String]) -> String {
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
}
