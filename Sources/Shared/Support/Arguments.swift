/// A small command-line parser: positional words, `--flag`, `--key value`
/// (or `--key=value`), repeated keys collected. Unknown options are errors.
package struct Arguments {
    package private(set) var positional: [String] = []
    private var options: [String: [String]] = [:]
    private var flags: Set<String> = []

    package struct UsageError: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }

    /// - Parameters:
    ///   - valueOptions: options that take a value.
    ///   - flagOptions: options that take none.
    package init(_ args: some Sequence<String>, valueOptions: Set<String>, flagOptions: Set<String>) throws(UsageError) {
        var iterator = args.makeIterator()
        var onlyPositional = false
        while let arg = iterator.next() {
            if onlyPositional || !arg.hasPrefix("--") || arg == "-" {
                positional.append(arg)
                continue
            }
            if arg == "--" { onlyPositional = true; continue }
            var name = String(arg.dropFirst(2))
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if flagOptions.contains(name) {
                guard inlineValue == nil else { throw UsageError(message: "--\(name) takes no value") }
                flags.insert(name)
            } else if valueOptions.contains(name) {
                guard let value = inlineValue ?? iterator.next() else { throw UsageError(message: "--\(name) needs a value") }
                options[name, default: []].append(value)
            } else {
                throw UsageError(message: "unknown option --\(name)")
            }
        }
    }

    package func flag(_ name: String) -> Bool { flags.contains(name) }
    package func value(_ name: String) -> String? { options[name]?.last }
    package func values(_ name: String) -> [String] { options[name] ?? [] }

    package func required(_ name: String) throws(UsageError) -> String {
        guard let v = value(name) else { throw UsageError(message: "--\(name) is required") }
        return v
    }
}
