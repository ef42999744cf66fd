#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A device identity. It becomes an MQTT topic level, a broker username and a
/// certificate CN, so the alphabet is deliberately small: never `/`, `+`, `#`.
package struct DeviceID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    package let rawValue: String

    /// Names starting with this prefix belong to Lanyard's own services.
    package static let reservedPrefix = "lanyard-"

    package init?(_ raw: String) {
        guard DeviceID.isWellFormed(raw) else { return nil }
        rawValue = raw
    }

    /// `^[a-z0-9][a-z0-9.-]{0,62}$`
    package static func isWellFormed(_ raw: String) -> Bool {
        let bytes = Array(raw.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func allowed(_ b: UInt8, first: Bool) -> Bool {
            if (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) { return true }
            return !first && (b == 0x2E || b == 0x2D)
        }
        for (i, b) in bytes.enumerated() where !allowed(b, first: i == 0) { return false }
        return true
    }

    /// True for identities reserved to services (`lanyard-controller`, …).
    package var isReserved: Bool { rawValue.hasPrefix(DeviceID.reservedPrefix) }

    package var description: String { rawValue }

    package static func < (a: DeviceID, b: DeviceID) -> Bool { a.rawValue < b.rawValue }

    package init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let id = DeviceID(raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "malformed device id"))
        }
        self = id
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// The URI SAN every device certificate carries.
    package func spiffeID(trustDomain: String) -> String { "spiffe://\(trustDomain)/device/\(rawValue)" }
}

/// Identities of Lanyard's own components, in certificates and the broker ACL.
package enum ServiceIdentity {
    package static let controller = "lanyard-controller"
    package static let commandSigner = "lanyard-command-signer"
    package static func commandSignerURI(trustDomain: String) -> String { "spiffe://\(trustDomain)/lanyard/commands" }
    package static func controllerURI(trustDomain: String) -> String { "spiffe://\(trustDomain)/lanyard/controller" }
    /// An admin API operator's client certificate; device certificates never carry this path.
    package static func operatorURIPrefix(trustDomain: String) -> String { "spiffe://\(trustDomain)/operator/" }
}
