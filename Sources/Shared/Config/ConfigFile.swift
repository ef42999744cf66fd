#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An error in a configuration file, naming the file and line.
package struct ConfigError: Error, Sendable, CustomStringConvertible {
    package var path: String
    package var line: Int?
    package var message: String

    package init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    package var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}

/// An INI-style file: `[section]` headers, `key = value` lines, `#` comments.
/// Values are kept verbatim (trimmed); typed access goes through `ConfigReader`.
package struct ConfigFile: Sendable {
    package struct Entry: Sendable {
        package var value: String
        package var line: Int
    }

    package let path: String
    /// Section name → key → entry. Keys before any header live in section "".
    package private(set) var sections: [String: [String: Entry]] = [:]
    package private(set) var sectionLines: [String: Int] = [:]

    package static let maxBytes = 1 << 20

    package static func load(path: String) throws(ConfigError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, line: nil, message: "cannot read the file")
        }
        guard data.count <= maxBytes else { throw ConfigError(path: path, line: nil, message: "file is larger than 1 MiB") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(path: path, line: nil, message: "file is not UTF-8")
        }
        return try parse(text, path: path)
    }

    package static func parse(_ text: String, path: String) throws(ConfigError) -> ConfigFile {
        var file = ConfigFile(path: path)
        var section = ""
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = rawLine.trimmed()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigError(path: path, line: number, message: "malformed section header \(line)")
                }
                section = String(line.dropFirst().dropLast()).trimmed()
                guard file.sectionLines[section] == nil else {
                    throw ConfigError(path: path, line: number, message: "section [\(section)] appears twice")
                }
                file.sectionLines[section] = number
                file.sections[section, default: [:]] = [:]
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(path: path, line: number, message: "expected key = value")
            }
            let key = line[..<eq].trimmed()
            var value = line[line.index(after: eq)...].trimmed()
            // A trailing comment needs a space before `#` so values may contain `#`.
            if let hash = value.firstRange(of: " #") { value = value[..<hash.lowerBound].trimmed() }
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else {
                throw ConfigError(path: path, line: number, message: "malformed key '\(key)'")
            }
            guard file.sections[section]?[key] == nil else {
                throw ConfigError(path: path, line: number, message: "key \(key) is set twice in [\(section)]")
            }
            file.sections[section, default: [:]][key] = Entry(value: value, line: number)
        }
        return file
    }
}

/// Typed access to a `ConfigFile` that remembers which keys were read, so
/// `finish()` can refuse unknown keys and sections (a typo is an error, not a default).
package struct ConfigReader {
    package let file: ConfigFile
    private var used: Set<String> = []
    private var usedSections: Set<String> = []

    package init(_ file: ConfigFile) { self.file = file }

    /// A path from the file made absolute: relative paths are relative to
    /// the configuration file's directory, not to the working directory.
    package func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return "\(AtomicFile.parentDirectory(of: AtomicFile.absolutePath(file.path)))/\(path)"
    }

    private mutating func entry(_ section: String, _ key: String) -> ConfigFile.Entry? {
        usedSections.insert(section)
        used.insert("\(section)\u{0}\(key)")
        return file.sections[section]?[key]
    }

    private func fail(_ entry: ConfigFile.Entry?, _ message: String) -> ConfigError {
        ConfigError(path: file.path, line: entry?.line, message: message)
    }

    package mutating func optionalString(_ section: String, _ key: String) -> String? {
        entry(section, key)?.value
    }

    /// A value that may be absent but, when present, must not be empty.
    package mutating func optionalNonEmpty(_ section: String, _ key: String) throws(ConfigError) -> String? {
        guard let e = entry(section, key) else { return nil }
        guard !e.value.isEmpty else { throw fail(e, "[\(section)] \(key) is empty: remove the line or give a value") }
        return e.value
    }

    package mutating func string(_ section: String, _ key: String, default value: String? = nil) throws(ConfigError) -> String {
        if let e = entry(section, key) {
            guard !e.value.isEmpty else { throw fail(e, "[\(section)] \(key) is empty") }
            return e.value
        }
        if let value { return value }
        throw fail(nil, "[\(section)] \(key) is required")
    }

    package mutating func int(_ section: String, _ key: String, default value: Int? = nil, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let e = entry(section, key) else {
            if let value { return value }
            throw fail(nil, "[\(section)] \(key) is required")
        }
        guard let n = Int(e.value), range.contains(n) else {
            throw fail(e, "[\(section)] \(key) = \(e.value): expected a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    package mutating func double(_ section: String, _ key: String, default value: Double, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let e = entry(section, key) else { return value }
        guard let n = Double(e.value), range.contains(n) else {
            throw fail(e, "[\(section)] \(key) = \(e.value): expected a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    package mutating func bool(_ section: String, _ key: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let e = entry(section, key) else { return value }
        switch e.value.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw fail(e, "[\(section)] \(key) = \(e.value): expected true or false")
        }
    }

    /// Durations like `90s`, `5m`, `24h`, `7d` (a bare number means seconds).
    package mutating func duration(_ section: String, _ key: String, default value: Duration? = nil, range: ClosedRange<Duration>) throws(ConfigError) -> Duration {
        guard let e = entry(section, key) else {
            if let value { return value }
            throw fail(nil, "[\(section)] \(key) is required")
        }
        guard let d = ConfigReader.parseDuration(e.value), range.contains(d) else {
            throw fail(e, "[\(section)] \(key) = \(e.value): expected a duration such as 90s, 5m, 24h or 7d between \(range.lowerBound.seconds)s and \(range.upperBound.seconds)s")
        }
        return d
    }

    package mutating func list(_ section: String, _ key: String, default value: [String]) -> [String] {
        guard let e = entry(section, key) else { return value }
        return e.value.split(separator: ",").map { $0.trimmed() }.filter { !$0.isEmpty }
    }

    package static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 0), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(suffix.count)), n >= 0 else { return nil }
            return scale == 0 ? .milliseconds(n) : .seconds(n * scale)
        }
        guard let n = Int64(text), n >= 0 else { return nil }
        return .seconds(n)
    }

    /// Names of sections that start with `prefix` (e.g. `class.`), sorted.
    package mutating func sections(withPrefix prefix: String) -> [String] {
        let names = file.sections.keys.filter { $0.hasPrefix(prefix) }.sorted()
        usedSections.formUnion(names)
        return names
    }

    /// Refuses any key or section nobody read.
    package func finish() throws(ConfigError) {
        for (section, entries) in file.sections.sorted(by: { $0.key < $1.key }) {
            if !usedSections.contains(section) {
                throw ConfigError(path: file.path, line: file.sectionLines[section], message: "unknown section [\(section)]")
            }
            for (key, e) in entries.sorted(by: { $0.value.line < $1.value.line }) where !used.contains("\(section)\u{0}\(key)") {
                throw ConfigError(path: file.path, line: e.line, message: "unknown key \(key) in [\(section)]")
            }
        }
    }
}

extension Duration {
    /// Whole seconds, rounded down.
    package var seconds: Int64 { components.seconds }
    package var timeInterval: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
