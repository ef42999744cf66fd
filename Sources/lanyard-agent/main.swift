import Agent
import Shared
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

let usage = """
usage: lanyard-agent run --config FILE
       lanyard-agent status --config FILE [--json]

  run     enroll if needed, keep the device certificate renewed, obey signed commands
  status  print id, state, serial, notAfter, next renewal; exit 0 healthy, 1 degraded, 2 expired/revoked
"""

func fail(_ message: String, _ status: Int32) -> Never {
    Logger.writeStandardError("lanyard-agent: \(message)\n")
    exit(status)
}

let argv = Array(CommandLine.arguments.dropFirst())
guard let verb = argv.first, verb != "--help", verb != "-h", verb != "help" else {
    print(usage)
    exit(argv.isEmpty ? 64 : 0)
}
let args: Arguments
do { args = try Arguments(argv.dropFirst(), valueOptions: ["config"], flagOptions: ["json", "help"]) } catch { fail("\(error)\n\(usage)", 64) }
if args.flag("help") { print(usage); exit(0) }
guard let configPath = args.value("config") else { fail("--config is required\n\(usage)", 64) }
let configuration: AgentConfiguration
do { configuration = try AgentConfiguration.load(path: configPath) } catch { fail(error.description, AgentRunner.Exit.configuration.rawValue) }

switch verb {
case "status":
    let report = StatusReport.read(configuration)
    if args.flag("json") {
        print(String(decoding: WireCodec.encode(report), as: UTF8.self))
    } else {
        print(report.text)
    }
    exit(report.exitStatus)
case "run":
    umask(0o077)
    // Before any task exists: every Swift job runs on this thread's event
    // loop, not on libdispatch's pool (whose monitor wakes the process every
    // second; EventLoopExecutor). Signals come through a pipe, not Dispatch.
    AgentExecutors.install()
    let stop = ShutdownSignal(signals: [])
    SignalPipe.watch([(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")]) { stop.fire($0) }
    Task {
        do {
            let runner = try AgentRunner(configuration: configuration, stop: stop)
            let result = try await runner.run()
            exit(result.rawValue)
        } catch {
            fail("\(error)", AgentRunner.Exit.failure.rawValue)
        }
    }
    do { try AgentExecutors.loop.run() } catch { fail("\(error)", AgentRunner.Exit.failure.rawValue) }
    exit(AgentRunner.Exit.failure.rawValue)
default:
    fail("unknown command '\(verb)'\n\(usage)", 64)
}
