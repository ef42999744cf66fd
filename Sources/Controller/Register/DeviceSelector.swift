import Foundation
import Shared

/// Which devices an exception covers, a revocation or a campaign hits: `key=value`
/// terms joined by commas, all of which must hold. Exceptions take one term
/// of class, site or tag; revocations and campaigns any of id, class, site, zone, vendor,
/// model, firmware, tag, issuer (e.g. `vendor=acme,zone=ot`).
struct Selector {
    static let exceptionKeys: Set<String> = ["class", "site", "tag"]
    /// `issuer` is the common name of the issuing CA of the device's current certificate (CA rotation).
    static let revocationKeys: Set<String> = ["id", "class", "site", "zone", "vendor", "model", "firmware", "tag", "issuer"]

    var terms: [(key: String, value: String)]

    init(_ text: String) throws {
        try self.init(text, keys: Selector.exceptionKeys, maxTerms: 1)
    }

    init(_ text: String, keys: Set<String>, maxTerms: Int) throws {
        let usage = "selector must be KEY=VALUE\(maxTerms > 1 ? "[,KEY=VALUE...]" : "") with KEY one of \(keys.sorted().joined(separator: ", "))"
        guard text.utf8.count <= 1024 else { throw WireError(.badRequest, usage) }
        var terms: [(key: String, value: String)] = []
        for term in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = term.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, keys.contains(parts[0]), !parts[1].isEmpty, parts[1].count <= 128 else { throw WireError(.badRequest, usage) }
            terms.append((parts[0], parts[1]))
        }
        guard !terms.isEmpty, terms.count <= maxTerms else { throw WireError(.badRequest, usage) }
        self.terms = terms
    }

    func matches(_ d: DeviceView) -> Bool {
        terms.allSatisfy { term in
            switch term.key {
            case "id": d.id == term.value
            case "class": d.deviceClass == term.value
            case "site": d.attributes?.site == term.value
            case "zone": d.attributes?.zone == term.value
            case "vendor": d.attributes?.vendor == term.value
            case "model": d.attributes?.model == term.value
            case "firmware": d.attributes?.firmware == term.value
            case "issuer": d.issuer == term.value
            default: d.attributes?.tags?.contains(term.value) == true
            }
        }
    }
}
