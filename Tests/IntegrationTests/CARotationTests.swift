import Foundation
import Shared
import Testing
import TestSupport

/// Rotation of the issuing CA with running agents (docs/ca-rotation.md):
/// the new CA is trusted everywhere before it issues, every device is
/// re-issued by a campaign, then the old CA is retired — and the broker
/// refuses what it issued.
@Suite("CA rotation over a real Mosquitto and real agents", .serialized)
struct CARotationTests {
    func startFleet(_ ids: [String]) async throws -> Fleet {
        // A 1 h lifetime: no scheduled renewal interferes with the rotation's.
        let fleet = try Fleet(ttl: "1h")
        for id in ids {
            try fleet.register(id)
            try fleet.startAgent(id)
        }
        try await fleet.wait("\(ids.count) agents to enroll and connect", timeout: 30) {
            try ids.allSatisfy { try fleet.agentStatus($0)["connected"] as? Bool == true }
        }
        return fleet
    }

    func caStatus(_ fleet: Fleet) throws -> [String: Any] {
        let result = try fleet.ctl(["--json", "ca", "status"])
        guard [0, 2].contains(result.exitCode), let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestProcess.Failure(command: ["lanyardctl", "ca", "status"], result: result)
        }
        return object
    }

    func generationStates(_ status: [String: Any]) -> [Int: String] {
        Dictionary(uniqueKeysWithValues: (status["generations"] as? [[String: Any]] ?? []).map { ($0["generation"] as? Int ?? 0, $0["state"] as? String ?? "") })
    }

    func issuerOf(_ pemFile: String) throws -> String {
        try Certificate(pem: String(contentsOfFile: pemFile, encoding: .utf8)).issuerCommonName ?? ""
    }

    func connections(_ fleet: Fleet, _ id: String) -> Int {
        fleet.agentLog(id).components(separatedBy: "connected to the broker").count - 1
    }

    @Test("three running agents: trusted, re-issued and moved off the old CA with one reconnect each; the old CA's certificates are refused after")
    func rotationWithRunningAgents() async throws {
        let ids = ["gw-ca1", "gw-ca2", "gw-ca3"]
        let fleet = try await startFleet(ids)
        var passed = false
        defer { fleet.shutdown(keep: !passed) }

        // 01 — before: everything from CA 1; keep a copy of one device's credential to try after the rotation.
        let stolen = "\(fleet.directory)/old-credential"
        try FileManager.default.createDirectory(atPath: stolen, withIntermediateDirectories: true)
        let oldGeneration = try resolvedGeneration(fleet.stateDirectory("gw-ca3"))
        try FileManager.default.copyItem(atPath: "\(oldGeneration)/chain.pem", toPath: "\(stolen)/chain.pem")
        try FileManager.default.copyItem(atPath: "\(oldGeneration)/key.pem", toPath: "\(stolen)/key.pem")
        #expect(try issuerOf("\(stolen)/chain.pem").hasPrefix("Lanyard Issuing CA 1"))
        let connectionsBefore = Dictionary(uniqueKeysWithValues: ids.map { ($0, connections(fleet, $0)) })

        // 02 — the rotation, as an operator runs it on the controller host; it shows progress and returns when done.
        let rotate = try await offPool {
            try TestProcess.run("\(fleet.bin)/lanyard-controller", ["ca", "rotate", "--config", "\(fleet.controllerDirectory)/controller.conf",
                                                                   "--reason", "yearly issuing CA rotation", "--bundle-timeout", "30s",
                                                                   "--device-timeout", "30s"], timeout: 150)
        }
        #expect(rotate.exitCode == 0, "ca rotate: \(rotate.stdout) \(rotate.stderr)")
        #expect(rotate.stdout.contains("retiring") && rotate.stdout.contains("completed"), "no progress shown: \(rotate.stdout)")

        let status = try caStatus(fleet)
        let rotation = try #require(status["rotation"] as? [String: Any])
        #expect(rotation["phase"] as? String == "completed", "\(rotation)")
        #expect(rotation["bundleAcknowledged"] as? Int == 3 && rotation["bundleDevices"] as? Int == 3, "final bundle not acknowledged by all: \(rotation)")
        #expect(generationStates(status) == [1: "retired", 2: "active"], "\(status)")
        // What CA 1 issued is superseded: revoked in the register (the broker refuses it anyway), so no finding flags a device.
        let oldCA = (status["generations"] as? [[String: Any]] ?? []).first { $0["generation"] as? Int == 1 }
        #expect(oldCA?["liveCertificates"] as? Int == 0, "\(String(describing: oldCA))")
        let findings = try fleet.ctl(["findings"])
        #expect(!findings.stdout.contains("issuer_ca_retired"), "\(findings.stdout)")

        // 03 — every agent runs a certificate from CA 2, verified by openssl against root + CA 2 alone, and trusts only those two.
        let bundle = try String(contentsOfFile: fleet.bundle, encoding: .utf8)
        #expect(bundle.components(separatedBy: "BEGIN CERTIFICATE").count - 1 == 2, "the broker's bundle still has the old CA")
        let rootOnly = "\(fleet.directory)/root.pem"
        try FileManager.default.copyItem(atPath: "\(fleet.pki)/root-ca.pem", toPath: rootOnly)
        for id in ids {
            let agent = try fleet.agentStatus(id)
            #expect(agent["connected"] as? Bool == true, "\(id) is not connected after the rotation: \(agent)")
            let generation = try resolvedGeneration(fleet.stateDirectory(id))
            #expect(try issuerOf("\(generation)/chain.pem").hasPrefix("Lanyard Issuing CA 2"), "\(id) still runs a certificate from CA 1")
            let verified = try TestProcess.run("/usr/bin/openssl", ["verify", "-CAfile", fleet.bundle, "-untrusted", "\(generation)/chain.pem",
                                                                    "\(generation)/chain.pem"])
            #expect(verified.succeeded, "\(id): \(verified.stdout) \(verified.stderr)")
            let installed = try String(contentsOfFile: "\(fleet.stateDirectory(id))/bundle.pem", encoding: .utf8)
            #expect(installed == bundle, "\(id)'s trust bundle is not root + CA 2")
            // Reconnects: one with the new certificate (a bundle alone does not reconnect).
            let reconnects = connections(fleet, id) - (connectionsBefore[id] ?? 0)
            #expect((1...2).contains(reconnects), "\(id) reconnected \(reconnects) times during the rotation")
        }

        // 04 — the old CA is gone: its key destroyed, its CRL out of the broker's directory, the broker refuses what it issued.
        #expect(!FileManager.default.fileExists(atPath: "\(fleet.pki)/issuing-ca.key"), "CA 1's key survived its retirement")
        let newKey = try FileManager.default.attributesOfItem(atPath: "\(fleet.pki)/issuing-ca-2.key")
        #expect((newKey[.posixPermissions] as? Int) == 0o600)
        let crlFiles = try FileManager.default.contentsOfDirectory(atPath: "\(fleet.controllerDirectory)/crl.d")
        #expect(crlFiles.count == 1, "one live CA, one CRL: \(crlFiles)")
        let refused = try fleet.peer(["connect", "--port", String(fleet.broker.operationalPort), "--cert", "\(stolen)/chain.pem",
                                      "--key", "\(stolen)/key.pem", "--client-id", "gw-ca3"])
        #expect(refused.json["connected"] as? Bool != true, "the broker still accepts a certificate from the retired CA: \(refused.json)")
        let current = try resolvedGeneration(fleet.stateDirectory("gw-ca1"))
        let served = try TestProcess.run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(fleet.broker.operationalPort)", "-CAfile", rootOnly,
                                                              "-cert", "\(current)/chain.pem", "-key", "\(current)/key.pem", "-verify_return_error"],
                                         stdin: "", timeout: 10)
        #expect(served.stdout.contains("Issuing CA 2") && !served.stdout.contains("Issuing CA 1"), "the broker does not serve a CA 2 certificate: \(served.stdout)")

        // 05 — after the rotation the controller still commands (signer from CA 2) and revokes (CA 2's CRL, the broker's crlfile).
        #expect(try fleet.status()["brokerConnected"] as? Bool == true)
        let victim = "\(fleet.directory)/revoked-chain.pem"
        try FileManager.default.copyItem(atPath: "\(try resolvedGeneration(fleet.stateDirectory("gw-ca2")))/chain.pem", toPath: victim)
        let revoke = try fleet.ctl(["revoke", "gw-ca2", "--reason", "keyCompromise"])
        #expect(revoke.succeeded, "\(revoke.stdout) \(revoke.stderr)")
        let crlCheck = try TestProcess.run("/usr/bin/openssl", ["verify", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl,
                                                                "-untrusted", victim, victim])
        #expect(!crlCheck.succeeded && (crlCheck.stdout + crlCheck.stderr).contains("certificate revoked"), "\(crlCheck.stdout) \(crlCheck.stderr)")
        let stillGood = try TestProcess.run("/usr/bin/openssl", ["verify", "-crl_check", "-CAfile", fleet.bundle, "-CRLfile", fleet.crl,
                                                                 "-untrusted", "\(current)/chain.pem", "\(current)/chain.pem"])
        #expect(stillGood.succeeded, "gw-ca1 must still verify with CA 2's CRL: \(stillGood.stdout) \(stillGood.stderr)")

        // 06 — the audit trail has every step.
        let audit = try TestProcess.run("/usr/bin/sqlite3", ["\(fleet.controllerDirectory)/lanyard.db", "SELECT action FROM audit WHERE action LIKE 'ca.%' ORDER BY seq"])
        #expect(audit.stdout == "ca.rotate.start\nca.rotate.activate\nca.rotate.retiring\nca.rotate.complete\n", "\(audit.stdout)")
        passed = true
    }

    @Test("a device offline through the rotation holds it in re-issuing; ca retire revokes its old certificate and retires the CA")
    func offlineDeviceThenRetire() async throws {
        let ids = ["gw-on", "gw-off"]
        let fleet = try await startFleet(ids)
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        fleet.stopAgent("gw-off")

        let started = try fleet.ctl(["ca", "rotate", "--reason", "rotation with a device away", "--bundle-timeout", "5s",
                                     "--device-timeout", "10s", "--no-wait"])
        #expect(started.succeeded, "\(started.stdout) \(started.stderr)")
        // Non-identity operators may look but not rotate: lanyardctl over the socket has every role but business, so the RBAC matrix covers that.
        try await fleet.wait("the online device to be re-issued while the offline one holds the rotation", timeout: 60) {
            let r = try caStatus(fleet)["rotation"] as? [String: Any] ?? [:]
            return r["phase"] as? String == "reissuing" && r["remainingOnOldCA"] as? Int == 1
        }
        try await fleet.wait("gw-on to run a CA 2 certificate", timeout: 30) {
            (try? issuerOf("\(try resolvedGeneration(fleet.stateDirectory("gw-on")))/chain.pem"))?.hasPrefix("Lanyard Issuing CA 2") == true
        }
        #expect(try fleet.ctl(["ca", "status"]).stdout.contains("devices still on CA 1: 1"))

        // Someone holds a session open with gw-off's CA 1 credential (its agent is away and does not rotate it).
        let held = "\(fleet.directory)/held"
        try FileManager.default.createDirectory(atPath: held, withIntermediateDirectories: true)
        let offGeneration = try resolvedGeneration(fleet.stateDirectory("gw-off"))
        try FileManager.default.copyItem(atPath: "\(offGeneration)/chain.pem", toPath: "\(held)/chain.pem")
        try FileManager.default.copyItem(atPath: "\(offGeneration)/key.pem", toPath: "\(held)/key.pem")
        let holderLog = "\(fleet.directory)/holder.log"
        let holder = try ChildProcess("/usr/bin/env", ["python3", Broker.repositoryRoot + "/Tests/IntegrationTests/python/mqtt_peer.py", "hold",
                                                       "--port", String(fleet.broker.operationalPort), "--ca", fleet.bundle,
                                                       "--cert", "\(held)/chain.pem", "--key", "\(held)/key.pem",
                                                       "--client-id", "gw-off", "--wait", "30"], outputPath: holderLog)
        defer { holder.signal(SIGKILL) }
        try await fleet.wait("the old-CA session to be up", timeout: 15) {
            ((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "").contains("\"event\": \"connected\"")
        }

        // The operator gives up on gw-off: its CA 1 certificate is revoked (superseded), its live session cut, and CA 1 retires.
        let retired = try fleet.ctl(["ca", "retire", "--reason", "gw-off is scrapped; re-enroll if it ever returns"])
        #expect(retired.succeeded, "\(retired.stdout) \(retired.stderr)")
        _ = try await offPool { holder.wait(timeout: 10) }
        let ended = ((try? String(contentsOfFile: holderLog, encoding: .utf8)) ?? "").split(separator: "\n").last
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        #expect(ended["dropped"] as? Bool == true, "the session on the retired CA's certificate survived ca retire: \(ended)")
        try await fleet.wait("the rotation to complete", timeout: 30) {
            (try caStatus(fleet)["rotation"] as? [String: Any])?["phase"] as? String == "completed"
        }
        let off = try fleet.ctlJSON(["device", "show", "gw-off"])
        let certificates = off["certificates"] as? [[String: Any]] ?? []
        #expect(certificates.allSatisfy { $0["revokedAt"] != nil }, "gw-off's CA 1 certificate was not revoked: \(certificates)")
        #expect(try fleet.agentStatus("gw-on")["connected"] as? Bool == true)
        passed = true
    }

    @Test("a controller killed -9 in the middle of the rotation resumes it from the register and completes")
    func controllerKilledMidRotation() async throws {
        let ids = ["gw-k1", "gw-k2"]
        let fleet = try await startFleet(ids)
        var passed = false
        defer { fleet.shutdown(keep: !passed) }
        // A slow re-issue (1 a minute): the kill lands while the campaign still has a device to send.
        let started = try fleet.ctl(["ca", "rotate", "--reason", "kill test", "--max-per-minute", "1", "--bundle-timeout", "20s",
                                     "--device-timeout", "20s", "--no-wait"])
        #expect(started.succeeded, "\(started.stdout) \(started.stderr)")
        try await fleet.wait("the rotation to re-issue", timeout: 30) {
            (try caStatus(fleet)["rotation"] as? [String: Any])?["phase"] as? String == "reissuing"
        }
        fleet.controller?.signal(SIGKILL)
        if let controller = fleet.controller { _ = try await offPool { controller.wait(timeout: 5) } }
        fleet.stopController()
        try fleet.startController()
        // One device a minute: the second is sent about a minute after the first.
        try await fleet.wait("the resumed rotation to complete", timeout: 150) {
            (try caStatus(fleet)["rotation"] as? [String: Any])?["phase"] as? String == "completed"
        }
        for id in ids {
            try await fleet.wait("\(id) to run a CA 2 certificate and be connected", timeout: 20) {
                let generation = try resolvedGeneration(fleet.stateDirectory(id))
                return try issuerOf("\(generation)/chain.pem").hasPrefix("Lanyard Issuing CA 2") && fleet.agentStatus(id)["connected"] as? Bool == true
            }
        }
        #expect(!FileManager.default.fileExists(atPath: "\(fleet.pki)/issuing-ca.key"))
        // The restarted controller signs with the CA 2 signer it re-issued before the kill, and talks to the broker with its CA 2 client certificate.
        #expect(try issuerOf("\(fleet.pki)/command-signer.pem").hasPrefix("Lanyard Issuing CA 2"))
        #expect(try fleet.status()["brokerConnected"] as? Bool == true)
        passed = true
    }
}
