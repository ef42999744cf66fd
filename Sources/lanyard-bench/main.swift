import Controller
import Foundation
import Shared
import Synchronization

// lanyard-bench: issuance figures on this machine, in-process.
//   1. the crypto bound: P-256 CSR signature verification + certificate
//      signing with OpenSSL, one core;
//   2. the controller's issuance path (IssuanceService.enroll: register
//      checks, token, CSR checks, signing, SQLite WAL commit), one core,
//      reported as certificates/s, CPU ms per certificate and its ratio to (1).
// The MQTT round trip is not included: that is the fleet simulator's job.
// Usage: lanyard-bench [--count N] [--json FILE]
//        lanyard-bench --register N [--register-db FILE] [--json FILE]   (register scale: RegisterScale.swift;
//                                                   --register-db builds it in a controller's database and keeps it)

/// The whole process so far: CPU seconds (user + system), and voluntary plus
/// involuntary context switches (how often the workers were put to sleep and
/// woken: the group commit's hand-offs).
func processUsage() -> (cpu: Double, switches: Int) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    return (cpu, usage.ru_nvcsw + usage.ru_nivcsw)
}

func measure(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double, switches: Int) {
    let before = processUsage()
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    let after = processUsage()
    return (wall, after.cpu - before.cpu, after.switches - before.switches)
}

let args = try Arguments(CommandLine.arguments.dropFirst(), valueOptions: ["count", "json", "register", "register-db"], flagOptions: ["help"])
if args.flag("help") {
    print("usage: lanyard-bench [--count N] [--json FILE]\n       lanyard-bench --register N [--register-db FILE] [--json FILE]")
    exit(0)
}
if let text = args.value("register") {
    guard let n = Int(text), n > 0, n <= 1_000_000 else {
        FileHandle.standardError.write(Data("lanyard-bench: --register must be 1...1000000\n".utf8))
        exit(64)
    }
    try registerScale(n, jsonPath: args.value("json"), databasePath: args.value("register-db"))
    exit(0)
}
guard let count = Int(args.value("count") ?? "2000"), count > 0, count <= 1_000_000 else {
    FileHandle.standardError.write(Data("lanyard-bench: --count must be 1...1000000\n".utf8))
    exit(64)
}

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-bench-\(UUID().uuidString.prefix(8))").path
defer { try? FileManager.default.removeItem(atPath: dir) }
let layout = PKILayout(directory: "\(dir)/pki")
try PKIInitializer(layout: layout, trustDomain: "bench.lanyard").run()
let authority = try IssuingAuthority.load(layout)

print("preparing \(2 * count) device keys and CSRs ...")
// The first `count` for the crypto bound and the one-thread path, the others for the concurrent path.
let ids = (0..<(2 * count)).map { String(format: "dev-%07d", $0) }
let keys = try ids.map { _ in try PrivateKey.generateP256() }
let csrs = try zip(ids, keys).map { try CertificateSigningRequest.make(commonName: $0, key: $1) }

// 1. Crypto bound.
let now = Date()
let bound = try measure {
    for (id, csr) in zip(ids, csrs).prefix(count) {
        guard csr.verifySignature() else { fatalError("CSR does not verify") }
        var t = CertificateTemplate(commonName: id, serial: CertificateTemplate.randomSerial(), notBefore: now, notAfter: now.addingTimeInterval(86400))
        t.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
        t.uriSANs = ["spiffe://bench.lanyard/device/\(id)"]
        _ = try CertificateIssuer.sign(t, subjectKey: csr.publicKey, issuer: authority.certificate, issuerKey: authority.key)
    }
}

// 2. The controller's issuance path.
let store = try Store(path: "\(dir)/lanyard.db")
let policy = DeviceClassPolicy(name: "default", ttl: .seconds(86400), maxTTL: .seconds(30 * 86400), renewAt: 2.0 / 3.0,
                               requiredOwners: OwnerRole.allCases, keyAlgorithms: ["P-256"], rotateKeys: true)
let register = try DeviceRegister(store: store, classes: ["default": policy], clock: { Date() })
let issuance = IssuanceService(store: store, register: register, authority: authority, trustDomain: "bench.lanyard",
                               backdate: .seconds(300), clock: { Date() })
let owners = Dictionary(uniqueKeysWithValues: OwnerRole.allCases.map { ($0.rawValue, "bench") })
print("registering and approving \(count) devices ...")
var requests: [(EnrollRequest, DeviceID)] = []
for (id, csr) in zip(ids, csrs) {
    _ = try register.add(DeviceAddParams(id: id, deviceClass: "default", owners: owners), actor: "bench")
    let approval = try register.approve(DeviceApproveParams(id: id), defaultTTL: .seconds(3600), actor: "bench")
    let device = DeviceID(id)!
    requests.append((EnrollRequest(requestId: makeRequestID(), deviceId: device, csr: csr.pem, token: approval.token, agentVersion: "bench"), device))
}
var refused = 0
let path = measure {
    for (request, device) in requests.prefix(count) where issuance.enroll(request, topicDevice: device).status != "issued" { refused += 1 }
}
// 3. The same path from as many threads as the controller's MQTT workers
// (MessageWorkers.defaultCount): CSR checks and signing on every core, the
// register's writes group-committed (Store.transaction).
let threads = MessageWorkers.defaultCount
let concurrentRefused = Mutex(0)
let countsBefore = store.groupCommitCounts
let concurrent = measure {
    let pending = Array(requests.suffix(count))
    MessageWorkers.runLanes(threads) { worker in
        for index in stride(from: worker, to: pending.count, by: threads) {
            let (request, device) = pending[index]
            if issuance.enroll(request, topicDevice: device).status != "issued" { concurrentRefused.withLock { $0 += 1 } }
        }
    }
}
let countsAfter = store.groupCommitCounts
let commits = countsAfter.commits - countsBefore.commits
refused += concurrentRefused.withLock { $0 }
guard refused == 0 else {
    FileHandle.standardError.write(Data("lanyard-bench: \(refused) enrollments were refused\n".utf8))
    exit(1)
}

let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory / (1 << 30)) GiB"
let boundRate = Double(count) / bound.wall
let pathRate = Double(count) / path.wall
let concurrentRate = Double(count) / concurrent.wall
func perCertificate(_ switches: Int) -> String { String(format: "%.2f", Double(switches) / Double(count)) }
let rows: [(String, String, String, String, String)] = [
    ("crypto bound: CSR verify + sign (1 core)", String(format: "%.0f/s", boundRate), String(format: "%.3f ms", bound.cpu * 1000 / Double(count)), "1.00",
     perCertificate(bound.switches)),
    ("controller enroll path, SQLite (1 thread)", String(format: "%.0f/s", pathRate), String(format: "%.3f ms", path.cpu * 1000 / Double(count)),
     String(format: "%.2f", pathRate / boundRate), perCertificate(path.switches)),
    ("controller enroll path, \(threads) threads, group commit (\(count) in \(commits) commits)", String(format: "%.0f/s", concurrentRate),
     String(format: "%.3f ms", concurrent.cpu * 1000 / Double(count)), String(format: "%.2f", concurrentRate / boundRate), perCertificate(concurrent.switches)),
]
print("\n| issuance (\(machine), \(count) certificates) | wall rate | CPU per certificate | ratio to bound | context switches per certificate |")
print("|---|---|---|---|---|")
for r in rows { print("| \(r.0) | \(r.1) | \(r.2) | \(r.3) | \(r.4) |") }

if let jsonPath = args.value("json") {
    let json: [String: Any] = [
        "machine": machine, "count": count, "command": "lanyard-bench --count \(count)", "date": ISO8601DateFormatter().string(from: Date()),
        "crypto_bound_per_second": boundRate, "crypto_bound_cpu_ms": bound.cpu * 1000 / Double(count),
        "enroll_path_per_second": pathRate, "enroll_path_cpu_ms": path.cpu * 1000 / Double(count), "ratio_to_bound": pathRate / boundRate,
        "enroll_path_concurrent_threads": threads, "enroll_path_concurrent_per_second": concurrentRate,
        "enroll_path_concurrent_cpu_ms": concurrent.cpu * 1000 / Double(count), "enroll_path_concurrent_commits": commits,
        "enroll_path_context_switches_per_certificate": Double(path.switches) / Double(count),
        "enroll_path_concurrent_context_switches_per_certificate": Double(concurrent.switches) / Double(count),
    ]
    try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: jsonPath))
}
