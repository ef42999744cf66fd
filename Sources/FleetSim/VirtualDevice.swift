import Foundation
import Shared

/// A request the device has made and not yet seen answered: kept until a
/// valid reply comes, re-sent unchanged (same id, key and CSR) after a
/// timeout or a reconnect, as the agent does.
struct PendingRequest {
    enum Kind: Equatable {
        case enroll
        /// `scheduled` (a renewal round), `forced` (after a rotate command) or
        /// `campaign` (after a rotate command with `args.campaign`).
        case renew(reason: String)
    }

    var kind: Kind
    var requestID: String
    var key: PrivateKey
    var topic: String
    var payload: [UInt8]
    /// Monotonic time of the first publish (latency runs from here), 0 before it.
    var firstSentAt: UInt64 = 0
    var lastSentAt: UInt64 = 0
    /// Published on the current connection.
    var sentOnThisConnection = false
}

/// One simulated device: its key and certificate (in memory only), its
/// current connection and where it is in the protocol. Owned and touched by
/// exactly one shard thread.
final class VirtualDevice {
    enum Stage: Equatable {
        case idle
        /// Waiting for an issuance slot.
        case queuedForIssue
        /// Waiting for a connection slot.
        case queuedForConnect
        /// TCP/TLS/CONNECT under way.
        case connecting
        /// CONNACK received, SUBACK awaited.
        case subscribing
        /// Request published, reply awaited.
        case waitingForReply
        /// Online on the operational listener with a valid certificate.
        case ready
        /// Waiting for `wakeAt` before connecting again.
        case backoff
        /// Revoked by command: connecting again with the revoked certificate
        /// until the broker refuses it.
        case probing
        /// Revoked by command: the state report is on its way, then disconnect.
        case closing
        case revoked
        case failed
    }

    enum Link: Equatable {
        case bootstrap
        case operational
        /// The revoked certificate, to see the broker refuse it.
        case probe
    }

    /// Global index (device id number) and index within its shard (epoll token).
    let index: Int
    var local = 0
    /// Mode B: index of its multiplexer in the shard, -1 otherwise.
    var mux = -1
    let id: DeviceID
    let topics: DeviceTopics
    var token: String?

    var key: PrivateKey?
    var chain: [Certificate] = []
    var serial = ""
    var notAfter: Int64 = 0
    /// Controller time of the first certificate: older commands are stale.
    var enrolledIssuedAt: Int64 = 0
    var lastSeq: Int64 = 0
    var renewalsDone = 0
    /// The last renewal round this device has counted as done.
    var roundCounted = 0
    var enrollCounted = false
    var onlineCounted = false

    var pending: PendingRequest?
    var holdsIssueSlot = false
    var holdsConnectSlot = false

    var connection: MQTTLoopConnection?
    var link: Link = .bootstrap
    var subscribeMID: Int32 = -1
    var connectStartedAt: UInt64 = 0
    var connackReceived = false
    var registeredFD: Int32 = -1
    var registeredWrite = false

    var stage: Stage = .idle
    var wakeAt: UInt64 = 0
    var consecutiveFailures = 0
    var probeStartedAt: UInt64 = 0
    /// Disconnect when this publish is acknowledged.
    var closeAfterMID: Int32 = -1
    /// A rotation's certificate is installed: report the state (with its serial) once reconnected on it.
    var rotationToReport = false
    /// A rotate command came while the device was busy (reconnecting, renewing): rotate once ready, as the agent does.
    var rotationDue = false
    var rotationCampaign: String?

    init(index: Int, id: DeviceID) {
        self.index = index
        self.id = id
        self.topics = DeviceTopics(id)
    }
}

/// The topic strings of one device, built once.
struct DeviceTopics {
    let enrollRequest: String
    let enrollResponse: String
    let renewRequest: String
    let renewResponse: String
    let command: String
    let ack: String
    let state: String

    init(_ id: DeviceID) {
        enrollRequest = Topics.enrollRequest(id)
        enrollResponse = Topics.enrollResponse(id)
        renewRequest = Topics.renewRequest(id)
        renewResponse = Topics.renewResponse(id)
        command = Topics.command(id)
        ack = Topics.ack(id)
        state = Topics.state(id)
    }
}
