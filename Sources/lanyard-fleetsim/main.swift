import FleetSim
import Foundation
import Shared

// lanyard-fleetsim: N simulated devices speaking the Lanyard protocol to a
// real Mosquitto and a real controller (loopback). See docs/benchmarks.md.

let usage = """
usage: lanyard-fleetsim run --devices N --bundle FILE --socket ADMIN_SOCKET --port OPERATIONAL --bootstrap-port BOOTSTRAP [options]

  --host ADDRESS             broker address (default 127.0.0.1)
  --prefix WORD              device ids are WORD-0000000 ... (default sim)
  --threads N                event-loop threads per process (default 2)
  --processes N              worker processes (default: as many as the descriptor limit needs, 3 per device)
  --enroll-concurrency N     enrollment requests in flight (default 64)
  --rounds C1,C2,...         one renewal round per entry, C requests in flight (default 64; 0 rounds: --rounds none)
  --connect-concurrency N    TLS connection attempts in flight (default 64)
  --multiplex M --mux-port P mode B: the devices share M connections to the benchmark-only listener on port P
                             (bench/broker/; never in a deployment) instead of one connection each
  --revoke N                 revoke N devices one by one; time command and broker refusal (default 0)
  --hold SECONDS             stay online afterwards, following commands (default 0)
  --ready-file FILE          create FILE when every device is online and the hold begins
  --stop-file FILE           end the hold early once FILE exists
  --site NAME                register the devices with site NAME (a selector for campaigns and revocation)
  --tag NAME --tagged N      register the first N devices (default all) with tag NAME
  --event-log FILE           append '<event> <device> <unix seconds>' lines: command-revoke, refused,
                             command-rotate, rotated (for revocations and campaigns started by someone else)
  --request-timeout SECONDS  re-send an unanswered request (default 20)
  --phase-timeout SECONDS    give up on a phase (default 900)
  --controller-pid PID       measure the controller's CPU and RSS per phase
  --broker-pid PID           measure the broker's CPU and RSS per phase
  --json FILE                write the summary as JSON ('-' for stdout instead of the table)
  --tcp-nodelay              TCP_NODELAY on the devices' sockets (the agent leaves Nagle on)
  --quiet                    no progress lines
Exit status: 0 every device enrolled and renewed, every revocation enforced; 1 otherwise; 64 usage.
"""

func fail(_ message: String, _ status: Int32) -> Never {
    FileHandle.standardError.write(Data("lanyard-fleetsim: \(message)\n".utf8))
    exit(status)
}

let arguments: Arguments
do {
    arguments = try Arguments(CommandLine.arguments.dropFirst(), valueOptions: [
        "devices", "bundle", "socket", "port", "bootstrap-port", "host", "prefix", "threads", "enroll-concurrency", "rounds",
        "connect-concurrency", "revoke", "hold", "request-timeout", "phase-timeout", "controller-pid", "broker-pid", "json",
        "processes", "offset", "worker-dir", "worker-index", "multiplex", "mux-port",
        "ready-file", "stop-file", "site", "tag", "tagged", "event-log",
    ], flagOptions: ["quiet", "help", "tcp-nodelay"])
} catch {
    fail("\(error)\n\(usage)", 64)
}
if arguments.flag("help") || arguments.positional != ["run"] {
    print(usage)
    exit(arguments.flag("help") ? 0 : 64)
}

func integer(_ name: String, _ fallback: Int? = nil) -> Int {
    guard let text = arguments.value(name) else {
        guard let fallback else { fail("--\(name) is required\n\(usage)", 64) }
        return fallback
    }
    guard let value = Int(text) else { fail("--\(name) must be an integer", 64) }
    return value
}

func seconds(_ name: String, _ fallback: Double) -> Double {
    guard let text = arguments.value(name) else { return fallback }
    guard let value = Double(text), value.isFinite, value >= 0 else { fail("--\(name) must be a number of seconds", 64) }
    return value
}

guard let bundle = arguments.value("bundle"), let socket = arguments.value("socket") ?? ProcessInfo.processInfo.environment["LANYARD_SOCKET"] else {
    fail("--bundle and --socket are required\n\(usage)", 64)
}
var configuration = SimulationConfiguration(devices: integer("devices"), operationalPort: integer("port"), bootstrapPort: integer("bootstrap-port"),
                                            bundlePath: bundle, adminSocket: socket)
configuration.host = arguments.value("host") ?? configuration.host
configuration.prefix = arguments.value("prefix") ?? configuration.prefix
configuration.offset = integer("offset", 0)
configuration.multiplex = integer("multiplex", 0)
configuration.multiplexPort = integer("mux-port", 0)
configuration.threads = integer("threads", configuration.threads)
configuration.enrollConcurrency = integer("enroll-concurrency", configuration.enrollConcurrency)
configuration.connectConcurrency = integer("connect-concurrency", configuration.connectConcurrency)
configuration.revocations = integer("revoke", 0)
configuration.holdSeconds = seconds("hold", 0)
configuration.readyFile = arguments.value("ready-file")
configuration.stopFile = arguments.value("stop-file")
configuration.site = arguments.value("site")
configuration.tag = arguments.value("tag")
configuration.tagged = integer("tagged", configuration.tag == nil ? 0 : configuration.devices)
configuration.eventLogPath = arguments.value("event-log")
configuration.requestTimeout = seconds("request-timeout", configuration.requestTimeout)
configuration.phaseTimeout = seconds("phase-timeout", configuration.phaseTimeout)
configuration.progress = !arguments.flag("quiet")
configuration.tcpNoDelay = arguments.flag("tcp-nodelay")
if let rounds = arguments.value("rounds") {
    if rounds == "none" {
        configuration.renewalRounds = []
    } else {
        let values = rounds.split(separator: ",").map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { fail("--rounds must be a comma-separated list of integers", 64) }
        configuration.renewalRounds = values.map { $0! }
    }
}
if arguments.value("controller-pid") != nil { configuration.controllerPID = Int32(integer("controller-pid")) }
if arguments.value("broker-pid") != nil { configuration.brokerPID = Int32(integer("broker-pid")) }

let printLine: (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
let summary: SimulationSummary
do {
    if let directory = arguments.value("worker-dir") {
        // One of several processes started by the coordinator below.
        configuration.keepSamples = true
        let barrier = FleetCoordinator.workerBarrier(directory: directory, index: integer("worker-index"))
        summary = try FleetSimulator(configuration, barrier: barrier, log: printLine).run()
    } else {
        let processes = integer("processes", FleetCoordinator.processesNeeded(configuration))
        if processes > 1 {
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            summary = try FleetCoordinator(configuration, processes: processes, executable: executable, log: printLine).run()
        } else {
            summary = try FleetSimulator(configuration, log: printLine).run()
        }
    }
} catch {
    fail("\(error)", 1)
}

let json = arguments.value("json")
if json == "-" {
    FileHandle.standardOutput.write((try? summary.json()) ?? Data())
    print()
} else {
    print(summary.markdown)
    if let json {
        do { try summary.json().write(to: URL(fileURLWithPath: json)) } catch { fail("cannot write \(json): \(error)", 1) }
    }
}
exit(summary.ok ? 0 : 1)
