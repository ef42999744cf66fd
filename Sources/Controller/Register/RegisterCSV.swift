import Foundation
import Shared

/// CSV import and export of the register, for CMDB synchronisation.
/// An import checks every row against the register inside one transaction
/// and rolls it back if any row is bad: all rows or none, and every bad row
/// is reported with its line number.
package struct RegisterCSV: Sendable {
    package let register: DeviceRegister

    package init(register: DeviceRegister) { self.register = register }

    /// Columns an import reads (in any order; `id` and `class` are required).
    package static let importColumns = ["id", "class", "vendor", "model", "hardware_serial", "firmware", "site", "zone", "tags", "bootstrap_method"]
        + OwnerRole.allCases.map { "owner_\($0.rawValue)" }
    /// An export adds what the register computes; an import ignores these.
    package static let exportOnlyColumns = ["state", "serial", "issuer", "not_after", "last_seen"]
    static let maxBytes = 32 << 20
    static let maxRows = 200_000

    package func export() throws -> String {
        var out = (RegisterCSV.importColumns + RegisterCSV.exportOnlyColumns).joined(separator: ",") + "\r\n"
        try register.forEachPage { page in for d in page {
            let a = d.attributes ?? DeviceAttributes()
            var fields = [d.id, d.deviceClass, a.vendor ?? "", a.model ?? "", a.hardwareSerial ?? "", a.firmware ?? "", a.site ?? "", a.zone ?? "",
                          (a.tags ?? []).joined(separator: ";"), a.bootstrapMethod ?? ""]
            fields += OwnerRole.allCases.map { d.owners[$0.rawValue] ?? "" }
            fields += [d.state, d.serial ?? "", d.issuer ?? "", d.notAfter.map(String.init) ?? "", d.lastSeen.map(String.init) ?? ""]
            out += fields.map(RegisterCSV.quote).joined(separator: ",") + "\r\n"
        } }
        return out
    }

    /// Creates devices that are new and updates the inventory fields of those
    /// that exist; owners of an existing device must match (changing them is a
    /// `device transfer`).
    package func importCSV(_ params: CSVImportParams, actor: String) throws -> CSVImportResult {
        guard params.csv.utf8.count <= RegisterCSV.maxBytes else { throw WireError(.badRequest, "CSV larger than \(RegisterCSV.maxBytes) bytes") }
        let records: [CSVRecord]
        do { records = try CSVParser.parse(params.csv) } catch let e as CSVParser.Failure {
            return CSVImportResult(applied: false, created: 0, updated: 0, problems: [CSVRowProblem(line: e.line, message: e.message)])
        }
        guard let header = records.first else { throw WireError(.badRequest, "the CSV is empty") }
        let columns = header.fields.map { $0.trimmed().lowercased() }
        let known = Set(RegisterCSV.importColumns + RegisterCSV.exportOnlyColumns)
        var headerProblems: [CSVRowProblem] = []
        for c in columns where !known.contains(c) { headerProblems.append(CSVRowProblem(line: header.line, message: "unknown column '\(c.prefix(40))'")) }
        for required in ["id", "class"] where !columns.contains(required) {
            headerProblems.append(CSVRowProblem(line: header.line, message: "column '\(required)' is required"))
        }
        if Set(columns).count != columns.count { headerProblems.append(CSVRowProblem(line: header.line, message: "a column is named twice")) }
        guard headerProblems.isEmpty else { return CSVImportResult(applied: false, created: 0, updated: 0, problems: headerProblems) }
        guard records.count - 1 <= RegisterCSV.maxRows else { throw WireError(.badRequest, "at most \(RegisterCSV.maxRows) rows") }

        var problems: [CSVRowProblem] = []
        var created = 0, updated = 0
        var seen: [String: Int] = [:]
        let now = register.clock()
        struct Rollback: Error {}
        do {
            try register.store.transaction { db in
                for record in records.dropFirst() {
                    if record.fields.count == 1 && record.fields[0].isEmpty { continue }  // blank line
                    do {
                        guard record.fields.count == columns.count else {
                            throw WireError(.badRequest, "\(record.fields.count) fields, the header has \(columns.count)")
                        }
                        var row: [String: String] = [:]
                        for (c, v) in zip(columns, record.fields) { row[c] = v.trimmed() }
                        let id = try DeviceRegister.validID(row["id"] ?? "")
                        if let first = seen[id.rawValue] { throw WireError(.alreadyExists, "device \(id) is also on line \(first)") }
                        seen[id.rawValue] = record.line
                        if try apply(db, id: id, row: row, now: now, actor: actor) { created += 1 } else { updated += 1 }
                    } catch let error as WireError {
                        problems.append(CSVRowProblem(line: record.line, message: "\(error.code): \(error.message)"))
                    }
                }
                if !problems.isEmpty || params.dryRun { throw Rollback() }
                try db.audit(time: now, actor: actor, action: "register.import", target: "-", outcome: "ok", detail: "created=\(created) updated=\(updated)")
            }
        } catch is Rollback {}
        if !problems.isEmpty {
            try? register.store.withConnection { db in
                try db.audit(time: now, actor: actor, action: "register.import", target: "-", outcome: WireError.Code.invalidRows.rawValue,
                             detail: "bad_rows=\(problems.map { String($0.line) }.joined(separator: ","))")
            }
        }
        return CSVImportResult(applied: problems.isEmpty && !params.dryRun, created: created, updated: updated, problems: problems)
    }

    /// Applies one row; true when it created the device.
    private func apply(_ db: SQLiteConnection, id: DeviceID, row: [String: String], now: Date, actor: String) throws -> Bool {
        func value(_ c: String) -> String? { row[c].flatMap { $0.isEmpty ? nil : $0 } }
        let tags = value("tags").map { $0.split(separator: ";").map { String($0).trimmed() }.filter { !$0.isEmpty } }
        let attributes = try DeviceAttributesValidator.validate(
            DeviceAttributes(vendor: value("vendor"), model: value("model"), hardwareSerial: value("hardware_serial"), firmware: value("firmware"),
                             site: value("site"), zone: value("zone"), tags: tags, bootstrapMethod: value("bootstrap_method")), creating: false)
        var ownerColumns: [String: String] = [:]
        for role in OwnerRole.allCases { if let v = value("owner_\(role.rawValue)") { ownerColumns[role.rawValue] = v } }
        let owners = try DeviceRegister.validOwners(ownerColumns)
        guard let deviceClass = value("class") else { throw WireError(.badRequest, "class is empty") }
        let exists = try !db.query("SELECT 1 FROM devices WHERE id = ?", [.text(id.rawValue)]).isEmpty
        if !exists {
            var withDefaults = attributes
            if withDefaults.bootstrapMethod == nil { withDefaults.bootstrapMethod = "token" }
            try register.insert(db, id: id, deviceClass: deviceClass, owners: owners, attributes: withDefaults, now: now, actor: actor)
            return true
        }
        let current = try register.view(db, id: id.rawValue, withCertificates: false)
        guard current.deviceClass == deviceClass else { throw WireError(.badRequest, "class \(deviceClass) differs from the register's \(current.deviceClass)") }
        let differing = owners.filter { current.owners[$0.0.rawValue] != $0.1 }.map(\.0.rawValue)
        guard differing.isEmpty else {
            throw WireError(.badRequest, "owners for \(differing.joined(separator: ", ")) differ from the register (change them with `lanyardctl device transfer`)")
        }
        try register.applyUpdate(db, id: id, changes: attributes, now: now, actor: actor, reason: "csv import")
        return false
    }

    static func quote(_ field: String) -> String {
        // A leading = + - @ makes spreadsheets evaluate a cell: prefix a quote (OWASP CSV injection).
        var f = field
        if let first = f.first, "=+-@".contains(first) { f = "'" + f }
        guard f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return f }
        return "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

struct CSVRecord {
    /// The line the record starts on (1-based).
    var line: Int
    var fields: [String]
}

/// RFC 4180: fields separated by commas, records by CRLF or LF, quoted
/// fields may hold commas, quotes (doubled) and line breaks.
enum CSVParser {
    // Untyped throws: `throws(Failure)` crashed the Swift 6.3.1 SIL ownership verifier in the caller.
    struct Failure: Error {
        var line: Int
        var message: String
    }

    static func parse(_ text: String) throws -> [CSVRecord] {
        var records: [CSVRecord] = []
        var fields: [String] = []
        var field = ""
        var line = 1, recordLine = 1
        var quoted = false, afterQuote = false
        var chars = Array(text.unicodeScalars)
        if chars.first == "\u{FEFF}" { chars.removeFirst() }  // a BOM from spreadsheet exports
        var i = 0
        func endRecord() {
            fields.append(field)
            records.append(CSVRecord(line: recordLine, fields: fields))
            fields = []
            field = ""
            afterQuote = false
        }
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { field.unicodeScalars.append("\""); i += 1 } else { quoted = false; afterQuote = true }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                guard field.isEmpty && !afterQuote else { throw Failure(line: line, message: "a quote inside an unquoted field") }
                quoted = true
            } else if c == "," {
                fields.append(field)
                field = ""
                afterQuote = false
            } else if c == "\r" || c == "\n" {
                if c == "\r" && i + 1 < chars.count && chars[i + 1] == "\n" { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                guard !afterQuote else { throw Failure(line: line, message: "text after a closing quote") }
                field.unicodeScalars.append(c)
            }
            i += 1
        }
        if quoted { throw Failure(line: recordLine, message: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        return records
    }
}
