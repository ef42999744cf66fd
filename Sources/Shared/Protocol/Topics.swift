/// MQTT topics of protocol version 1. Every device topic embeds the device id
/// as one level so the broker ACL (`%u`, `%c`) can scope it.
package enum Topics {
    package static let prefix = "lanyard/v1"

    package static func enrollRequest(_ id: DeviceID) -> String { "\(prefix)/enroll/\(id)/req" }
    package static func enrollResponse(_ id: DeviceID) -> String { "\(prefix)/enroll/\(id)/res" }
    package static func renewRequest(_ id: DeviceID) -> String { "\(prefix)/dev/\(id)/renew/req" }
    package static func renewResponse(_ id: DeviceID) -> String { "\(prefix)/dev/\(id)/renew/res" }
    package static func command(_ id: DeviceID) -> String { "\(prefix)/dev/\(id)/cmd" }
    package static func ack(_ id: DeviceID) -> String { "\(prefix)/dev/\(id)/ack" }
    package static func state(_ id: DeviceID) -> String { "\(prefix)/dev/\(id)/state" }
    package static let bundle = "\(prefix)/bundle"

    /// Filters the controller subscribes to.
    package static let allEnrollRequests = "\(prefix)/enroll/+/req"
    package static let allRenewRequests = "\(prefix)/dev/+/renew/req"
    package static let allAcks = "\(prefix)/dev/+/ack"
    package static let allStates = "\(prefix)/dev/+/state"

    /// What a message on a controller-side subscription is, and for which device.
    package enum Inbound: Equatable, Sendable {
        case enrollRequest(DeviceID)
        case renewRequest(DeviceID)
        case ack(DeviceID)
        case state(DeviceID)
    }

    /// Parses a topic the controller received; nil for anything unexpected,
    /// including a malformed device id level.
    package static func classify(_ topic: String) -> Inbound? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard levels.count >= 5, levels[0] == "lanyard", levels[1] == "v1" else { return nil }
        guard let id = DeviceID(levels[3]) else { return nil }
        switch (levels[2], Array(levels[4...])) {
        case ("enroll", ["req"]): return .enrollRequest(id)
        case ("dev", ["renew", "req"]): return .renewRequest(id)
        case ("dev", ["ack"]): return .ack(id)
        case ("dev", ["state"]): return .state(id)
        default: return nil
        }
    }
}
