// FoundationEssentials has no `trimmingCharacters(in:)`; the agent avoids full Foundation.
extension StringProtocol {
    /// The string without leading and trailing spaces, tabs and line breaks.
    package func trimmed() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
