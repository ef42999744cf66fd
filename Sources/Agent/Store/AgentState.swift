#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// What the agent persists besides credentials (`agent-state.json`, 0600):
/// the last accepted command sequence, the lifecycle state, and what
/// `lanyard-agent status` shows.
package struct AgentState: Codable, Sendable, Equatable {
    /// `enrolling`, `active`, `renewing`, `revoked`, `expired` (`retired` is a marker file, see RetiredMarker).
    package var state: String = "enrolling"
    /// Highest command `seq` accepted; anything not above it is a replay.
    package var lastSeq: Int64 = 0
    /// Controller time of the enrollment; commands issued before it are stale.
    package var enrolledAt: Int64?
    package var serial: String?
    package var notAfter: Int64?
    package var nextRenewal: Int64?
    package var lastError: String?
    package var connected: Bool = false
    package var renewals: Int = 0
    /// Hooks that failed or timed out since enrollment. Optional so a state
    /// file written before hooks existed still decodes (and keeps lastSeq).
    package var hookFailures: Int?
    /// Device clock minus controller clock (seconds, positive: the device is
    /// ahead), measured from the last certificate reply; see TrustedClock.
    package var clockSkewSeconds: Int64?
    /// When the credential was revoked (device clock): a token file written
    /// after it is a new enrollment token from an operator (re-enrollment
    /// after a compromise, where the class allows it).
    package var revokedAt: Int64?
    package var updatedAt: Int64 = 0

    package init() {}

    package static func path(in directory: String) -> String { "\(directory)/agent-state.json" }

    package static func load(from directory: String) -> AgentState {
        guard let bytes = try? AtomicFile.read(path(in: directory), limit: 65536),
              let state = try? WireCodec.decode(AgentState.self, from: bytes, limit: 65536) else { return AgentState() }
        return state
    }

    package func save(to directory: String) throws(FileError) {
        try AtomicFile.write(WireCodec.encode(self), to: AgentState.path(in: directory), mode: 0o600)
    }
}
