import Shared

/// Checks a device's inventory fields: lengths, characters, the zone and
/// bootstrap vocabularies, and (against the register) that the vendor is known
/// and the bootstrap method is one the class allows.
enum DeviceAttributesValidator {
    static let zones = ["it", "ot"]

    /// - Parameter creating: fills defaults (bootstrap `token`) for a new device.
    static func validate(_ a: DeviceAttributes, creating: Bool) throws -> DeviceAttributes {
        var a = a
        for (name, value) in [("vendor", a.vendor), ("model", a.model), ("hardwareSerial", a.hardwareSerial), ("firmware", a.firmware), ("site", a.site)] {
            guard let value else { continue }
            guard value.count <= 128, !value.contains(where: { $0.isNewline || $0 == "\"" || $0.unicodeScalars.contains { $0.value < 0x20 } }) else {
                throw WireError(.badRequest, "\(name) must be one line of at most 128 characters without quotes")
            }
        }
        if let zone = a.zone, !zone.isEmpty, !zones.contains(zone) { throw WireError(.badRequest, "zone must be it or ot, not '\(zone.prefix(20))'") }
        if let tags = a.tags {
            guard tags.count <= 32 else { throw WireError(.badRequest, "at most 32 tags") }
            for tag in tags where !DeviceID.isWellFormed(tag) {
                throw WireError(.badRequest, "tag '\(tag.prefix(40))' must match [a-z0-9][a-z0-9.-]* (at most 63 characters)")
            }
            a.tags = Array(Set(tags)).sorted()
        }
        if let method = a.bootstrapMethod, !ClassPolicies.bootstrapMethods.contains(method) {
            throw WireError(.badRequest, "bootstrap method must be one of \(ClassPolicies.bootstrapMethods.joined(separator: ", "))")
        }
        if creating && a.bootstrapMethod == nil { a.bootstrapMethod = "token" }
        return a
    }

    static func checkReferences(_ db: SQLiteConnection, _ a: DeviceAttributes, policy: DeviceClassPolicy) throws {
        if let vendor = a.vendor, try db.query("SELECT 1 FROM vendors WHERE name = ?", [.text(vendor)]).isEmpty {
            throw WireError(.badRequest, "unknown vendor '\(vendor)' (procurement records vendors with `lanyardctl vendor set`)")
        }
        let method = a.bootstrapMethod ?? "token"
        guard policy.bootstrapMethods.contains(method) else {
            throw WireError(.policyViolation, "class \(policy.name) does not allow bootstrap method \(method) (allowed: \(policy.bootstrapMethods.joined(separator: ", ")))")
        }
    }
}
