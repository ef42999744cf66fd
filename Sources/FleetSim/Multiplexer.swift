import Foundation
import Shared

/// Mode B: one MQTT+TLS connection carrying the traffic of many virtual
/// devices, on a benchmark-only broker listener whose ACL lets it publish
/// and subscribe on their topics (bench/broker/). Devices still make their
/// own keys, CSRs, verify their certificates and commands; only the
/// transport is shared. Owned by one shard thread.
final class Multiplexer {
    let number: Int
    let clientID: String
    /// Local indices of the devices it carries.
    var devices: [Int] = []
    var connection: MQTTLoopConnection?
    var ready = false
    var connackReceived = false
    var pendingSubscriptions: Set<Int32> = []
    var registeredFD: Int32 = -1
    var registeredWrite = false
    var connectStartedAt: UInt64 = 0
    var wakeAt: UInt64 = 0
    var failures = 0

    init(number: Int, clientID: String) {
        self.number = number
        self.clientID = clientID
    }
}

/// The device id in a topic a device subscribes to (`lanyard/v1/enroll/<id>/res`, `lanyard/v1/dev/<id>/...`).
func deviceIDLevel(of topic: String) -> Substring? {
    let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
    guard levels.count >= 4, levels[0] == "lanyard", levels[1] == "v1" else { return nil }
    return levels[3]
}
