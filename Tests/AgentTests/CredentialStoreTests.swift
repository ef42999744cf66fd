import Foundation
import Testing

@testable import Agent
import Shared

@Suite("CredentialStore: generations on disk, atomic switch, recovery, erasure")
struct CredentialStoreTests {
    let pki: AgentTestPKI
    let dir: TempDirectory
    let store: CredentialStore
    let device = DeviceID("gw-1")!

    init() throws {
        pki = try AgentTestPKI()
        dir = try TempDirectory()
        store = try CredentialStore(directory: dir.path + "/state", deviceID: device)
    }

    var now: Date { referenceTime.addingTimeInterval(60) }

    /// Installs a fresh key and certificate as the next generation.
    @discardableResult
    func installFresh() throws -> Credential {
        let key = try PrivateKey.generateP256()
        let chain = try pki.issueDevice("gw-1", key: key)
        return try store.install(key: key, chain: chain,
                                 metadata: GenerationMetadata(issuedAt: Int64(referenceTime.timeIntervalSince1970), renewAt: 0.66,
                                                              receivedAt: Int64(referenceTime.timeIntervalSince1970)))
    }

    func currentTarget() -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: store.currentLink) }

    func keyFiles() -> [String] {
        guard let e = FileManager.default.enumerator(atPath: store.directory) else { return [] }
        return e.compactMap { $0 as? String }.filter { $0.hasSuffix("key.pem") }
    }

    @Test("install writes gen-N, points current at it, key 0600 and directories 0700")
    func install() throws {
        let first = try installFresh()
        #expect(first.generation == 1)
        #expect(currentTarget() == "gen-1")
        #expect(try posixMode(store.directory) == 0o700)
        #expect(try posixMode(store.directory + "/gen-1") == 0o700)
        #expect(try posixMode(store.directory + "/gen-1/key.pem") == 0o600)
        #expect(try posixMode(store.directory + "/gen-1/chain.pem") == 0o600)
        #expect(try posixMode(store.directory + "/gen-1/meta.json") == 0o600)
        // Readers going through `current` see the pair just installed.
        let key = try PrivateKey(pem: String(contentsOfFile: store.keyPath, encoding: .utf8))
        let chain = try Certificate.chain(fromPEM: String(contentsOfFile: store.certificatePath, encoding: .utf8))
        #expect(key.publicKey == first.key.publicKey)
        #expect(chain == first.chain)
        #expect(chain.count == 2)

        let second = try installFresh()
        #expect(second.generation == 2)
        #expect(currentTarget() == "gen-2")
        #expect(store.generations() == [2, 1])
        #expect(try PrivateKey(pem: String(contentsOfFile: store.keyPath, encoding: .utf8)).publicKey == second.key.publicKey)
        // No temporary leftovers.
        let names = try FileManager.default.contentsOfDirectory(atPath: store.directory).sorted()
        #expect(names == ["current", "gen-1", "gen-2"])
    }

    @Test("prune keeps two generations: the new one and the previous one")
    func pruneKeepsTwo() throws {
        for _ in 0..<4 { try installFresh() }
        #expect(store.generations() == [4, 3])
        #expect(currentTarget() == "gen-4")
        #expect(keyFiles().sorted() == ["gen-3/key.pem", "gen-4/key.pem"])
    }

    @Test("recover uses a good current generation without repairs")
    func recoverClean() throws {
        try installFresh()
        let second = try installFresh()
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 2)
        #expect(credential?.key.publicKey == second.key.publicKey)
        #expect(credential?.metadata.renewAt == 0.66)
        #expect(repairs.isEmpty)
    }

    @Test("recover: current pointing at a missing directory falls back to the newest good generation")
    func recoverDanglingCurrent() throws {
        let first = try installFresh()
        try installFresh()
        try FileManager.default.removeItem(atPath: store.directory + "/gen-2")
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 1)
        #expect(credential?.key.publicKey == first.key.publicKey)
        #expect(currentTarget() == "gen-1")
        #expect(repairs.contains("current generation gen-2 is unusable"))
        #expect(repairs.contains("switched current to gen-1"))
    }

    @Test("recover: current pointing at a generation that never existed")
    func recoverCurrentToNowhere() throws {
        try installFresh()
        unlink(store.currentLink)
        #expect(symlink("gen-9", store.currentLink) == 0)
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 1)
        #expect(currentTarget() == "gen-1")
        #expect(repairs.contains("switched current to gen-1"))
    }

    @Test("recover: a truncated chain.pem in the newest generation falls back to the previous one")
    func recoverTruncatedChain() throws {
        let first = try installFresh()
        try installFresh()
        let chainPath = store.directory + "/gen-2/chain.pem"
        let text = try String(contentsOfFile: chainPath, encoding: .utf8)
        try String(text.prefix(text.count / 3)).write(toFile: chainPath, atomically: false, encoding: .utf8)
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 1)
        #expect(credential?.leaf == first.leaf)
        #expect(currentTarget() == "gen-1")
        #expect(repairs == ["current generation gen-2 is unusable", "switched current to gen-1", "erased unusable gen-2"])
        #expect(store.generations() == [1], "the unusable newer generation is erased so pruning cannot outlive the good one")
    }

    @Test("recover: a key that does not match the certificate falls back to the previous generation")
    func recoverMismatchedKey() throws {
        try installFresh()
        try installFresh()
        try PrivateKey.generateP256().pkcs8PEM().write(toFile: store.directory + "/gen-2/key.pem", atomically: false, encoding: .utf8)
        if case .success = store.load(2, trust: pki.bundle, now: now) { Issue.record("a mismatched key loaded") }
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 1)
        #expect(currentTarget() == "gen-1")
        #expect(repairs.contains("switched current to gen-1"))
    }

    @Test("recover: a leftover tmp-gen-N directory is removed and reported; the current generation stays")
    func recoverLeftoverTemp() throws {
        try installFresh()
        try installFresh()
        let tmp = store.directory + "/tmp-gen-3"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        try "half a key".write(toFile: tmp + "/key.pem", atomically: false, encoding: .utf8)
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential?.generation == 2)
        #expect(repairs == ["removed unfinished tmp-gen-3"])
        #expect(!FileManager.default.fileExists(atPath: tmp))
        #expect(currentTarget() == "gen-2")
    }

    @Test("recover refuses certificates for another device, from another CA, or expired")
    func recoverRefusesForeign() throws {
        let key = try PrivateKey.generateP256()
        let meta = GenerationMetadata(issuedAt: Int64(referenceTime.timeIntervalSince1970), renewAt: nil, receivedAt: 0)
        // For another device.
        _ = try store.install(key: key, chain: try pki.issueDevice("gw-2", key: key), metadata: meta)
        #expect(store.recover(trust: pki.bundle, now: now).credential == nil)
        // From another CA.
        let other = try AgentTestPKI()
        let key2 = try PrivateKey.generateP256()
        _ = try store.install(key: key2, chain: try other.issueDevice("gw-1", key: key2), metadata: meta)
        #expect(store.recover(trust: pki.bundle, now: now).credential == nil)
        #expect(store.recover(trust: other.bundle, now: now).credential?.generation == 2)
        // Expired.
        #expect(store.recover(trust: other.bundle, now: referenceTime.addingTimeInterval(86400 + 1)).credential == nil)
    }

    @Test("recover with nothing on disk returns nothing and repairs nothing")
    func recoverEmpty() throws {
        let (credential, repairs) = store.recover(trust: pki.bundle, now: now)
        #expect(credential == nil)
        #expect(repairs.isEmpty)
    }

    @Test("eraseAll leaves no key file and no current link")
    func eraseAll() throws {
        try installFresh()
        try installFresh()
        #expect(keyFiles().count == 2)
        store.eraseAll()
        #expect(keyFiles().isEmpty)
        #expect(currentTarget() == nil)
        #expect(store.generations().isEmpty)
        #expect(store.recover(trust: pki.bundle, now: now).credential == nil)
    }

    @Test("eraseAll also erases the key of an unfinished install (tmp-gen-N)")
    func eraseAllUnfinishedInstall() throws {
        try installFresh()
        // What an install interrupted after writing the key leaves behind.
        let tmp = store.directory + "/tmp-gen-2"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        try PrivateKey.generateP256().pkcs8PEM().write(toFile: tmp + "/key.pem", atomically: false, encoding: .utf8)
        store.eraseAll()
        #expect(keyFiles().isEmpty, "key files left after eraseAll: \(keyFiles())")
    }

    @Test("after recovering from a corrupt newest generation, the next install keeps the good one as previous")
    func installAfterRecoveryKeepsGoodPrevious() throws {
        let good = try installFresh()
        try installFresh()
        // gen-2 goes bad; recovery switches back to gen-1.
        try "garbage".write(toFile: store.directory + "/gen-2/chain.pem", atomically: false, encoding: .utf8)
        #expect(store.recover(trust: pki.bundle, now: now).credential?.generation == 1)
        // A renewal installs gen-3. The previous, known-good gen-1 must survive
        // (the new certificate has not yet been used for a broker connection).
        let next = try installFresh()
        #expect(currentTarget() == "gen-\(next.generation)")
        #expect(store.generations() == [next.generation, 1])
        if case .failure(let error) = store.load(1, trust: pki.bundle, now: now) {
            Issue.record("the last good generation was pruned while the corrupt one was kept: \(error); on disk: \(store.generations())")
        }
        _ = good
    }
}
