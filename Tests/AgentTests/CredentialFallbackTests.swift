import Foundation
import Testing

@testable import Agent
import Shared

@Suite("Credential fallback: keep the previous generation until the broker accepts the new one")
struct CredentialFallbackTests {
    let now = referenceTime

    @Test("a connection with the new generation commits it")
    func commit() {
        var f = CredentialFallback()
        f.installed(generation: 2, previous: 1, previousNotAfter: now.addingTimeInterval(600))
        #expect(f.connectionFailed(deliberate: true, now: now) == .none, "the agent's own disconnect of the old session")
        #expect(f.connectionFailed(deliberate: false, now: now) == .none, "one failure is not a refusal")
        #expect(f.connected(generation: 2) == .commit(generation: 2))
        #expect(f.watch == nil)
        #expect(f.connectionFailed(deliberate: false, now: now) == .none)
        #expect(f.connectionFailed(deliberate: false, now: now) == .none, "after the commit failures mean nothing")
    }

    @Test("two failures in a row before any connection revert to the previous generation while it is valid")
    func revert() {
        var f = CredentialFallback()
        f.installed(generation: 5, previous: 4, previousNotAfter: now.addingTimeInterval(600))
        #expect(f.connectionFailed(deliberate: false, now: now) == .none)
        #expect(f.connectionFailed(deliberate: false, now: now) == .revert(refused: 5, previous: 4))
        #expect(f.watch == nil)
    }

    @Test("an expired previous generation is not a fallback")
    func expired() {
        var f = CredentialFallback()
        f.installed(generation: 5, previous: 4, previousNotAfter: now.addingTimeInterval(-1))
        _ = f.connectionFailed(deliberate: false, now: now)
        #expect(f.connectionFailed(deliberate: false, now: now) == .keepTrying(refused: 5))
    }

    @Test("after enrollment there is nothing to fall back to")
    func enrollment() {
        var f = CredentialFallback()
        f.installed(generation: 1, previous: nil, previousNotAfter: nil)
        #expect(f.connectionFailed(deliberate: false, now: now) == .none)
        #expect(f.connectionFailed(deliberate: false, now: now) == .none)
        #expect(f.connected(generation: 1) == .none)
    }
}

@Suite("CredentialStore: commitCurrent and revert")
struct CredentialStoreFallbackTests {
    let pki: AgentTestPKI
    let dir: TempDirectory
    let store: CredentialStore

    init() throws {
        pki = try AgentTestPKI()
        dir = try TempDirectory()
        store = try CredentialStore(directory: dir.path + "/state", deviceID: DeviceID("gw-1")!)
    }

    func installFresh() throws -> Credential {
        let key = try PrivateKey.generateP256()
        let t = Int64(referenceTime.timeIntervalSince1970)
        return try store.install(key: key, chain: pki.issueDevice("gw-1", key: key), metadata: GenerationMetadata(issuedAt: t, renewAt: nil, receivedAt: t))
    }

    @Test("install keeps the previous generation; commitCurrent erases it")
    func commit() throws {
        _ = try installFresh()
        let second = try installFresh()
        #expect(store.generations() == [2, 1])
        #expect(FileManager.default.fileExists(atPath: store.directory + "/gen-2/cert.pem"), "leaf-only file for hooks")
        #expect(try Certificate(pem: String(contentsOfFile: store.directory + "/gen-2/cert.pem", encoding: .utf8)) == second.leaf)
        store.commitCurrent()
        #expect(store.generations() == [2])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: store.currentLink) == "gen-2")
    }

    @Test("revert points current back at the previous generation and erases the refused one")
    func revert() throws {
        let first = try installFresh()
        _ = try installFresh()
        let restored = try store.revert(to: 1, trust: pki.bundle, now: referenceTime.addingTimeInterval(60))
        #expect(restored.leaf == first.leaf)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: store.currentLink) == "gen-1")
        #expect(store.generations() == [1])
        #expect(try PrivateKey(pem: String(contentsOfFile: store.keyPath, encoding: .utf8)).publicKey == first.key.publicKey)
        // A later install numbers past the erased generation's slot and keeps gen-1 as its fallback.
        let third = try installFresh()
        #expect(third.generation == 2)
        #expect(store.generations() == [2, 1])
    }

    @Test("revert to a generation that no longer verifies fails and changes nothing")
    func revertExpired() throws {
        _ = try installFresh()
        _ = try installFresh()
        #expect(throws: FileError.self) { try store.revert(to: 1, trust: pki.bundle, now: referenceTime.addingTimeInterval(2 * 86400)) }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: store.currentLink) == "gen-2")
        #expect(store.generations() == [2, 1])
    }
}

@Suite("retire helpers")
struct RetireHelperTests {
    @Test("the token file is erased only when it lives in the state directory")
    func tokenInside() {
        #expect(AgentRunner.isInside("/var/lib/lanyard-agent/token", directory: "/var/lib/lanyard-agent"))
        #expect(AgentRunner.isInside("/var/lib/lanyard-agent/token", directory: "/var/lib/lanyard-agent/"))
        #expect(!AgentRunner.isInside("/etc/lanyard/enroll.token", directory: "/var/lib/lanyard-agent"))
        #expect(!AgentRunner.isInside("/var/lib/lanyard-agent2/token", directory: "/var/lib/lanyard-agent"))
    }

    @Test("the retired marker is a private file that status reports")
    func marker() throws {
        let dir = try TempDirectory()
        #expect(!RetiredMarker.exists(in: dir.path))
        try RetiredMarker.write(in: dir.path, at: referenceTime)
        #expect(RetiredMarker.exists(in: dir.path))
        #expect(try posixMode(RetiredMarker.path(in: dir.path)) == 0o600)
    }
}
