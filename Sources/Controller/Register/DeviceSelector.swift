import Foundation
import Shared

/// Which devices an exception covers, a revocation or a campaign hits: `key=value`
/// terms joined by commas, all of which must hold. Exceptions take one term
/// of class, site or tag; revocations and campaigns any of id, class, site, zone, vendor,
/// model, firmware, tag, issuer, issued-before (e.g. `vendor=acme,zone=ot`,
/// `id=gw-1|gw-2`: a value may list alternatives).
struct Selector {
    static let exceptionKeys: Set<String> = ["class", "site", "tag"]
    /// `issuer` is the common name of the issuing CA of the device's current certificate (CA rotation).
    /// `issued-before` takes a time (unix seconds or ISO 8601, e.g. 2026-11-01) and matches devices whose current certificate is older.
    static let revocationKeys: Set<String> = ["id", "class", "site", "zone", "vendor", "model", "firmware", "tag", "issuer", "issued-before"]

    var terms: [(key: String, value: String)]

    init(_ text: String) throws {
        try self.init(text, keys: Selector.exceptionKeys, maxTerms: 1)
    }

    init(_ text: String, keys: Set<String>, maxTerms: Int) throws {
        let usage = "selector must be KEY=VALUE\(maxTerms > 1 ? "[,KEY=VALUE...]" : "") with KEY one of \(keys.sorted().joined(separator: ", "))"
        // Room for an explicit list of ids (id=gw-1|gw-2|…).
        guard text.utf8.count <= 16384 else { throw WireError(.badRequest, usage + " (at most 16384 characters)") }
        var terms: [(key: String, value: String)] = []
        for term in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = term.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, keys.contains(parts[0]), !parts[1].isEmpty else { throw WireError(.badRequest, usage) }
            let alternatives = parts[1].split(separator: "|", omittingEmptySubsequences: false)
            guard alternatives.allSatisfy({ !$0.isEmpty && $0.count <= 128 }), alternatives.count <= 1000 else {
                throw WireError(.badRequest, "\(parts[0])=: each value (alternatives separated by |) must be 1 to 128 characters, at most 1000 of them")
            }
            if parts[0] == "issued-before" {
                guard alternatives.count == 1, Selector.time(parts[1]) != nil else {
                    throw WireError(.badRequest, "issued-before takes one time: unix seconds or ISO 8601 (2026-11-01, 2026-11-01T12:00:00Z)")
                }
            }
            terms.append((parts[0], parts[1]))
        }
        guard !terms.isEmpty, terms.count <= maxTerms else { throw WireError(.badRequest, usage) }
        self.terms = terms
    }

    /// Every term holds; a term holds when any of its `|` alternatives does.
    func matches(_ d: DeviceView) -> Bool {
        terms.allSatisfy { term in
            if term.key == "issued-before" {
                guard let limit = Selector.time(term.value), let issued = d.issuedAt else { return false }
                return issued < limit
            }
            return term.value.split(separator: "|").contains { alternative in
                let value = String(alternative)
                return switch term.key {
                case "id": d.id == value
                case "class": d.deviceClass == value
                case "site": d.attributes?.site == value
                case "zone": d.attributes?.zone == value
                case "vendor": d.attributes?.vendor == value
                case "model": d.attributes?.model == value
                case "firmware": d.attributes?.firmware == value
                case "issuer": d.issuer == value
                default: d.attributes?.tags?.contains(value) == true
                }
            }
        }
    }

    /// Unix seconds, an ISO 8601 date (midnight UTC) or date-time.
    static func time(_ text: String) -> Int64? {
        if let seconds = Int64(text), seconds >= 0 { return seconds }
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970) }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text).map { Int64($0.timeIntervalSince1970) }
    }
}

/// A device a selector picked: what campaigns, bulk revocation and retirement
/// act on. Only this is kept of each match, not its whole view (owners,
/// attributes, certificate), so selecting 100,000 devices holds a few MB.
package struct SelectedDevice: Sendable, Equatable {
    package let id: String
    package let state: String
}

extension DeviceRegister {
    /// The devices `selector` matches, in id order, read a page at a time
    /// (`forEachPage`, one snapshot).
    func select(_ selector: Selector) throws -> [SelectedDevice] {
        var matched: [SelectedDevice] = []
        try forEachPage { page in
            for device in page where selector.matches(device) { matched.append(SelectedDevice(id: device.id, state: device.state)) }
        }
        return matched
    }
}
