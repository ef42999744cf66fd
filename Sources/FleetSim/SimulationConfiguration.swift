import Foundation
import Shared

/// Everything `lanyard-fleetsim run` needs. Defaults suit a loopback bench.
package struct SimulationConfiguration: Sendable {
    /// Number of virtual devices (1 ... 200,000).
    package var devices: Int
    /// Device ids are `<prefix>-<7 digits>`; the prefix must keep them valid device ids.
    package var prefix = "sim"
    /// Number of the first device (worker processes each take a range).
    package var offset = 0
    /// Put every latency sample in the summary (workers, for the coordinator to merge).
    package var keepSamples = false
    package var host = "127.0.0.1"
    package var operationalPort: Int
    package var bootstrapPort: Int
    /// Trust bundle (PEM) the devices are installed with.
    package var bundlePath: String
    /// The controller's admin socket: registration, revocation, status.
    package var adminSocket: String
    /// Mode B when > 0: this many shared connections (in total) on `multiplexPort`,
    /// a benchmark-only listener (bench/broker/), instead of one connection per device.
    package var multiplex = 0
    package var multiplexPort = 0
    /// Event-loop threads; each drives its share of the devices' connections.
    package var threads = 2
    /// Enrollment requests in flight at once (each holds a bootstrap connection).
    package var enrollConcurrency = 64
    /// One renewal round per entry: the renewal requests in flight during that round.
    package var renewalRounds: [Int] = [64]
    /// TLS connection attempts in flight at once (the broker's listen backlog is small).
    package var connectConcurrency = 64
    /// Devices to revoke one after the other (`device.revoke`), timing command and broker refusal.
    package var revocations = 0
    /// Seconds to stay online after the rounds, following commands.
    package var holdSeconds: Double = 0
    /// Re-send a request (same id, same CSR) when no reply came within this many seconds.
    package var requestTimeout: Double = 20
    package var keepAlive = 120
    /// TCP_NODELAY on the devices' sockets. Off by default, like the agent (libmosquitto's default).
    package var tcpNoDelay = false
    /// Give up on a phase after this many seconds.
    package var phaseTimeout: Double = 900
    /// Register and approve the devices through the admin API first (else tokens must exist: not supported yet).
    package var register = true
    /// Processes whose CPU time and memory are measured per phase (from /proc).
    package var controllerPID: Int32?
    package var brokerPID: Int32?
    /// Register every device with this site (selector `site=…` for campaigns and bulk revocation).
    package var site: String?
    /// Register the first `tagged` devices (by number, across worker processes) with this tag.
    package var tag: String?
    package var tagged = 0
    /// Append timestamped observations (revoke command verified, broker refusal, rotation) to this file.
    package var eventLogPath: String?
    /// Created once every device is online and the hold begins (a script waits for it).
    package var readyFile: String?
    /// The hold ends early once this file exists.
    package var stopFile: String?
    /// Progress lines on stderr once a second.
    package var progress = true

    package init(devices: Int, operationalPort: Int, bootstrapPort: Int, bundlePath: String, adminSocket: String) {
        self.devices = devices
        self.operationalPort = operationalPort
        self.bootstrapPort = bootstrapPort
        self.bundlePath = bundlePath
        self.adminSocket = adminSocket
    }

    package func validate() throws {
        func bad(_ m: String) -> WireError { WireError(.badRequest, m) }
        guard (1...200_000).contains(devices) else { throw bad("--devices must be 1...200000") }
        guard (0...9_000_000).contains(offset) else { throw bad("--offset must be 0...9000000") }
        guard DeviceID("\(prefix)-0000000") != nil, !(DeviceID("\(prefix)-0000000")?.isReserved ?? true) else {
            throw bad("--prefix \(prefix) does not make valid device ids")
        }
        guard (1...65535).contains(operationalPort), (1...65535).contains(bootstrapPort) else { throw bad("ports must be 1...65535") }
        guard multiplex == 0 || ((1...10_000).contains(multiplex) && (1...65535).contains(multiplexPort)) else {
            throw bad("--multiplex needs 1...10000 connections and --mux-port")
        }
        guard (1...64).contains(threads) else { throw bad("--threads must be 1...64") }
        guard (1...100_000).contains(enrollConcurrency), renewalRounds.allSatisfy({ (1...100_000).contains($0) }) else {
            throw bad("concurrency must be 1...100000")
        }
        guard (1...10_000).contains(connectConcurrency) else { throw bad("--connect-concurrency must be 1...10000") }
        guard (0...devices).contains(revocations) else { throw bad("--revoke must be 0...devices") }
        guard tagged >= 0, tag == nil || !(tag!.isEmpty || tag!.count > 64 || tag!.contains(",")),
            site == nil || !(site!.isEmpty || site!.count > 64 || site!.contains(","))
        else { throw bad("--site and --tag must be 1...64 characters without commas") }
        guard holdSeconds >= 0, requestTimeout > 0, phaseTimeout > 0, (5...65535).contains(keepAlive) else { throw bad("bad timing option") }
    }

    func deviceID(_ index: Int) -> DeviceID {
        DeviceID(prefix + "-" + String(format: "%07d", index))!
    }
}
