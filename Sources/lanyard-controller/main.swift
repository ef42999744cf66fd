import Controller
import Foundation
import Shared

// Exit statuses scripts can rely on.
let exitUsage: Int32 = 64, exitConfig: Int32 = 78, exitFailure: Int32 = 1

let usage = """
usage: lanyard-controller init --dir DIR --trust-domain NAME [--broker-port N] [--broker-name HOST]... [--class-ttl DURATION] [--api-port N]
       lanyard-controller run --config FILE
       lanyard-controller operator add --config FILE --name NAME --role ROLE [--role ROLE]...
       lanyard-controller operator cert --config FILE --name NAME --csr FILE [--days N]
       lanyard-controller ca rotate|status|retire --config FILE [options]   (see `lanyard-controller ca --help`)
       lanyard-controller --help

  init   create the PKI (root CA, issuing CA, broker, controller and command-signer
         certificates; P-256; keys 0600) and a controller.conf in DIR. Existing
         files are kept: running it twice changes nothing.
         (and the admin API's HTTPS certificate). --api-port enables the HTTPS admin API.
  run    connect to the broker, answer enrollment and renewal requests, serve
         the admin API for lanyardctl, keep the CRL fresh. Stops on SIGTERM/SIGINT.
  ca     rotate the issuing CA with the fleet running, show its state, or retire
         the old CA of a stalled rotation (a client of the running controller's
         admin socket; docs/ca-rotation.md).
  operator add
         create an admin API operator (roles: identity, secarch, ops, procurement,
         business, auditor, admin) directly in the register, on the controller
         host: the bootstrap for the first admin. Prints the bearer token once.
  operator cert
         sign an existing operator's CSR (CN = the operator's name) for client-certificate
         authentication to the admin API; prints the chain (PEM). Default 30 days.
"""

func fail(_ message: String, _ status: Int32) -> Never {
    FileHandle.standardError.write(Data("lanyard-controller: \(message)\n".utf8))
    exit(status)
}

// Keys, the register and the audit trail are private to the controller's user;
// files others must read (certificates, the CRL) are given their mode explicitly.
umask(0o077)

let argv = Array(CommandLine.arguments.dropFirst())
guard let verb = argv.first, verb != "--help", verb != "-h", verb != "help" else {
    print(usage)
    exit(argv.isEmpty ? exitUsage : 0)
}

do {
    switch verb {
    case "init":
        let args = try Arguments(argv.dropFirst(), valueOptions: ["dir", "trust-domain", "broker-port", "broker-name", "class-ttl", "api-port"],
                                 flagOptions: ["help"])
        if args.flag("help") { print(usage); exit(0) }
        let dir = try args.required("dir")
        let trustDomain = try args.required("trust-domain")
        guard let port = Int(args.value("broker-port") ?? "8883"), (1...65535).contains(port) else { fail("--broker-port must be 1-65535", exitUsage) }
        let ttl = args.value("class-ttl") ?? "24h"
        guard ConfigReader.parseDuration(ttl) != nil else { fail("--class-ttl must be a duration such as 60s or 24h", exitUsage) }
        var apiPort: Int?
        if let text = args.value("api-port") {
            guard let p = Int(text), (1...65535).contains(p) else { fail("--api-port must be 1-65535", exitUsage) }
            apiPort = p
        }
        try AtomicFile.makePrivateDirectory(dir)
        let report = try PKIInitializer(layout: PKILayout(directory: "\(dir)/pki"), trustDomain: trustDomain, brokerNames: args.values("broker-name")).run()
        report.forEach { print($0) }
        let configPath = "\(dir)/controller.conf"
        if FileManager.default.fileExists(atPath: configPath) {
            print("kept    \(configPath)")
        } else {
            try AtomicFile.create(ControllerConfiguration.sample(trustDomain: trustDomain, brokerPort: port, classTTL: ttl, apiPort: apiPort), at: configPath, mode: 0o640)
            print("created \(configPath)")
        }
        // The broker refuses to start without a CRL: publish the first one now.
        let configuration = try ControllerConfiguration.load(path: configPath)
        if FileManager.default.fileExists(atPath: configuration.crlFile) {
            print("kept    \(configuration.crlFile)")
        } else {
            let published = try ControllerService.publishInitialCRL(configuration: configuration)
            print("created \(configuration.crlFile) (CRL #\(published.number))")
        }
    case "run":
        let args = try Arguments(argv.dropFirst(), valueOptions: ["config"], flagOptions: ["help"])
        if args.flag("help") { print(usage); exit(0) }
        let configuration: ControllerConfiguration
        do { configuration = try ControllerConfiguration.load(path: try args.required("config")) } catch let e as ConfigError { fail(e.description, exitConfig) }
        let service = try ControllerService(configuration: configuration)
        try await service.run()
    case "ca":
        let args = try Arguments(argv.dropFirst(), valueOptions: CACommand.optionNames.union(["config"]), flagOptions: CACommand.flagNames.union(["help"]))
        guard let verb = args.positional.first, !args.flag("help") else { print(CACommand.usage("lanyard-controller") + "\n(each with --config FILE: the controller's configuration, for its admin socket)"); exit(args.flag("help") ? 0 : exitUsage) }
        let configuration: ControllerConfiguration
        do { configuration = try ControllerConfiguration.load(path: try args.required("config")) } catch let e as ConfigError { fail(e.description, exitConfig) }
        let client = AdminClient(socketPath: configuration.adminSocket)
        let status = try CACommand.run(verb, args, program: "lanyard-controller", call: { op, params in try client.call(op, params, as: CAStatusView.self) },
                                       print: { print($0) }, printJSON: { status in
                                           let encoder = JSONEncoder()
                                           encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                                           print(String(decoding: (try? encoder.encode(status)) ?? Data(), as: UTF8.self))
                                       })
        exit(status)
    case "operator":
        let args = try Arguments(argv.dropFirst(), valueOptions: ["config", "name", "role", "csr", "days"], flagOptions: ["help", "json"])
        if args.flag("help") { print(usage); exit(0) }
        guard args.positional.first == "add" || args.positional.first == "cert" else { fail("operator: add or cert\n\(usage)", exitUsage) }
        let configuration: ControllerConfiguration
        do { configuration = try ControllerConfiguration.load(path: try args.required("config")) } catch let e as ConfigError { fail(e.description, exitConfig) }
        if args.positional.first == "cert" {
            guard let days = Int(args.value("days") ?? "30") else { fail("--days takes a number", exitUsage) }
            let csr = try AtomicFile.readText(try args.required("csr"), limit: 8192)
            print(try LocalOperatorBootstrap.certificate(configuration: configuration, name: try args.required("name"), csrPEM: csr, days: days), terminator: "")
            exit(0)
        }
        let created = try LocalOperatorBootstrap.add(configuration: configuration, name: try args.required("name"), roles: args.values("role"))
        // The token alone on stdout, for a script to store; shown only this once.
        print(created.token)
        FileHandle.standardError.write(Data("created operator \(created.operatorInfo.name) (\(created.operatorInfo.roles.joined(separator: ","))); the token above is shown once\n".utf8))
    default:
        fail("unknown command '\(verb)'\n\(usage)", exitUsage)
    }
} catch let error as WireError {
    fail(error.description, exitFailure)
} catch let error as Arguments.UsageError {
    fail("\(error.message)\n\(usage)", exitUsage)
} catch {
    fail("\(error)", exitFailure)
}
