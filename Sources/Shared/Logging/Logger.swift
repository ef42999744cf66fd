#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A line logger on stderr: `time level component: message key=value …`.
/// Under systemd (JOURNAL_STREAM set) each line starts with a syslog priority
/// prefix such as `<4>` so journald keeps the level. Never pass it key material
/// or tokens: callers log fingerprints and serials instead.
package struct Logger: Sendable {
    package enum Level: Int, Sendable, Comparable {
        case debug = 7, info = 6, notice = 5, warning = 4, error = 3
        package static func < (a: Level, b: Level) -> Bool { a.rawValue > b.rawValue }
        var label: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warn"
            case .error: "error"
            }
        }
    }

    package var component: String
    package var minimum: Level
    private let journal: Bool

    package init(component: String, minimum: Level = .info) {
        self.component = component
        self.minimum = minimum
        journal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
        if let env = ProcessInfo.processInfo.environment["LANYARD_LOG_LEVEL"], let level = Logger.level(named: env) {
            self.minimum = level
        }
    }

    package static func level(named name: String) -> Level? {
        switch name.lowercased() {
        case "debug": .debug
        case "info": .info
        case "notice": .notice
        case "warn", "warning": .warning
        case "error": .error
        default: nil
        }
    }

    package func log(_ level: Level, _ message: String, _ metadata: KeyValuePairs<String, String> = [:]) {
        guard level >= minimum else { return }
        var line = journal ? "<\(level.rawValue)>" : "\(Logger.timestamp()) \(level.label) "
        line += "\(component): \(message)"
        for (k, v) in metadata { line += " \(k)=\(Logger.quote(v))" }
        line += "\n"
        Logger.writeStandardError(line)
    }

    package func debug(_ m: String, _ md: KeyValuePairs<String, String> = [:]) { log(.debug, m, md) }
    package func info(_ m: String, _ md: KeyValuePairs<String, String> = [:]) { log(.info, m, md) }
    package func notice(_ m: String, _ md: KeyValuePairs<String, String> = [:]) { log(.notice, m, md) }
    package func warning(_ m: String, _ md: KeyValuePairs<String, String> = [:]) { log(.warning, m, md) }
    package func error(_ m: String, _ md: KeyValuePairs<String, String> = [:]) { log(.error, m, md) }

    /// Values with spaces or quotes are quoted; control characters from the
    /// network never reach the log raw.
    static func quote(_ value: String) -> String {
        var clean = ""
        for scalar in value.unicodeScalars.prefix(512) {
            if scalar.value < 0x20 || scalar.value == 0x7F { clean += "?" } else { clean.unicodeScalars.append(scalar) }
        }
        if clean.isEmpty || clean.contains(" ") || clean.contains("\"") || clean.contains("=") {
            return "\"" + clean.replacing("\"", with: "'") + "\""
        }
        return clean
    }

    /// One write(2) per line so lines from different threads never interleave.
    package static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var t = ts.tv_sec
        gmtime_r(&t, &tm)
        let ms = ts.tv_nsec / 1_000_000
        func pad(_ v: Int32, _ w: Int = 2) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(tm.tm_hour)):\(pad(tm.tm_min)):\(pad(tm.tm_sec)).\(pad(Int32(ms), 3))"
    }
}
