#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Shared

/// A key and the chain issued for it, as one generation on disk.
package struct Credential: Sendable {
    package var generation: Int
    package var key: PrivateKey
    package var chain: [Certificate]
    package var metadata: GenerationMetadata
    package var leaf: Certificate { chain[0] }
}

/// What the controller said about a certificate besides the certificate.
package struct GenerationMetadata: Codable, Sendable {
    /// Controller time of issuance (Unix seconds): the lifetime starts here, not at the backdated notBefore.
    package var issuedAt: Int64
    package var renewAt: Double?
    package var receivedAt: Int64
}

/// The credential store: generations `gen-N/{key.pem,chain.pem,meta.json}` in a
/// 0700 directory and a `current` symlink switched with rename(2). A reader (the
/// TLS stack re-reads `current/…` on every connect) sees the old pair or the
/// new one, never a mix, and a crash at any point leaves a usable generation.
package struct CredentialStore: Sendable {
    package let directory: String
    package let deviceID: DeviceID

    /// - Parameter create: make the 0700 directory if missing (`status` only reads).
    package init(directory: String, deviceID: DeviceID, create: Bool = true) throws(FileError) {
        self.directory = directory
        self.deviceID = deviceID
        if create { try AtomicFile.makePrivateDirectory(directory) }
    }

    package var currentLink: String { "\(directory)/current" }
    package var certificatePath: String { "\(currentLink)/chain.pem" }
    package var keyPath: String { "\(currentLink)/key.pem" }

    private func generationDirectory(_ n: Int) -> String { "\(directory)/gen-\(n)" }

    /// Generation numbers on disk, newest first.
    package func generations() -> [Int] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.compactMap { $0.hasPrefix("gen-") ? Int($0.dropFirst(4)) : nil }.sorted(by: >)
    }

    private func currentGeneration() -> Int? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: currentLink), target.hasPrefix("gen-") else { return nil }
        return Int(target.dropFirst(4))
    }

    /// Loads one generation and checks it: key matches the leaf, the leaf is
    /// this device's and chains to the trust bundle at `now`.
    package func load(_ n: Int, trust: [Certificate], now: Date) -> Result<Credential, FileError> {
        let dir = generationDirectory(n)
        do {
            let key = try PrivateKey(pem: AtomicFile.readText("\(dir)/key.pem", limit: 16384))
            let chain = try Certificate.chain(fromPEM: AtomicFile.readText("\(dir)/chain.pem", limit: 65536))
            let meta = try WireCodec.decode(GenerationMetadata.self, from: AtomicFile.read("\(dir)/meta.json", limit: 4096))
            guard chain[0].publicKey == key.publicKey else { return .failure(FileError(path: dir, message: "key does not match the certificate")) }
            guard chain[0].commonName == deviceID.rawValue else { return .failure(FileError(path: dir, message: "certificate is not for \(deviceID)")) }
            let verifier = ChainVerifier(trustAnchors: trust)
            var check = verifier.verify(chain[0], intermediates: Array(chain.dropFirst()), at: now, requiredEKU: ExtendedKeyUsage.clientAuth)
            // A clock a little behind the controller's (less than its backdate)
            // must not throw away a fresh generation as not yet valid.
            if !check.ok, now < chain[0].notBefore, chain[0].notBefore.timeIntervalSince(now) <= TrustedClock.skewTolerance {
                check = verifier.verify(chain[0], intermediates: Array(chain.dropFirst()), at: chain[0].notBefore, requiredEKU: ExtendedKeyUsage.clientAuth)
            }
            guard check.ok else { return .failure(FileError(path: dir, message: "certificate does not verify: \(check.reason ?? "?")")) }
            return .success(Credential(generation: n, key: key, chain: chain, metadata: meta))
        } catch let error as FileError {
            return .failure(error)
        } catch {
            return .failure(FileError(path: dir, message: "unreadable: \(error)"))
        }
    }

    /// Start-up recovery: use `current` if it is good, otherwise the newest
    /// good generation (re-pointing `current`), and report every repair.
    package func recover(trust: [Certificate], now: Date) -> (credential: Credential?, repairs: [String]) {
        var repairs: [String] = []
        // Leftovers of an interrupted install.
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for name in names where name.hasPrefix("tmp-gen-") || name.hasPrefix("current.tmp") {
                eraseTree("\(directory)/\(name)")
                repairs.append("removed unfinished \(name)")
            }
        }
        let current = currentGeneration()
        if let current, case .success(let credential) = load(current, trust: trust, now: now) {
            return (credential, repairs)
        }
        if let current { repairs.append("current generation gen-\(current) is unusable") }
        else if FileManager.default.fileExists(atPath: directory + "/current") || (try? FileManager.default.destinationOfSymbolicLink(atPath: currentLink)) != nil {
            repairs.append("current link points nowhere usable")
        }
        for n in generations() where n != current {
            if case .success(let credential) = load(n, trust: trust, now: now) {
                do {
                    try point(to: n)
                    repairs.append("switched current to gen-\(n)")
                } catch {
                    repairs.append("cannot switch current to gen-\(n): \(error)")
                }
                // Unusable generations newer than the one chosen would otherwise
                // outlive it at the next install's pruning.
                for newer in generations() where newer > n {
                    eraseGeneration(newer)
                    repairs.append("erased unusable gen-\(newer)")
                }
                return (credential, repairs)
            }
        }
        return (nil, repairs)
    }

    /// The newest generation that is good in every way but time: its key
    /// matches, and its chain verified while it was valid. What a device
    /// offline past notAfter re-enrolls with (ReenrollmentProof); only asked
    /// for when `recover` found nothing usable.
    package func newestExpired(trust: [Certificate], now: Date) -> Credential? {
        let ordered = (currentGeneration().map { [$0] } ?? []) + generations()
        for n in ordered {
            guard let pem = try? AtomicFile.readText("\(generationDirectory(n))/chain.pem", limit: 65536),
                  let leaf = try? Certificate.chain(fromPEM: pem).first, leaf.notAfter <= now else { continue }
            if case .success(let credential) = load(n, trust: trust, now: leaf.notAfter.addingTimeInterval(-1)) { return credential }
        }
        return nil
    }

    /// Writes a new generation and makes it current. The generation that was
    /// current stays on disk as the fallback; every other one is erased.
    package func install(key: PrivateKey, chain: [Certificate], metadata: GenerationMetadata) throws -> Credential {
        let previous = currentGeneration()
        let n = (generations().first ?? 0) + 1
        let tmp = "\(directory)/tmp-gen-\(n)"
        eraseTree(tmp)
        guard mkdir(tmp, 0o700) == 0 else { throw FileError.errno(tmp, "mkdir") }
        do {
            try AtomicFile.write(key.pkcs8PEM(), to: "\(tmp)/key.pem", mode: 0o600)
            CrashPoint.midWrite.reach()
            try AtomicFile.write(Certificate.pem(of: chain), to: "\(tmp)/chain.pem", mode: 0o600)
            // The leaf alone, for hooks and tools that want it apart from the chain.
            try AtomicFile.write(chain[0].pem, to: "\(tmp)/cert.pem", mode: 0o600)
            try AtomicFile.write(WireCodec.encode(metadata), to: "\(tmp)/meta.json", mode: 0o600)
        } catch {
            // Never leave a half-written key behind.
            eraseTree(tmp)
            throw error
        }
        let final = generationDirectory(n)
        guard rename(tmp, final) == 0 else {
            let error = FileError.errno(final, "rename")
            eraseTree(tmp)
            throw error
        }
        try AtomicFile.syncDirectory(of: final)
        try point(to: n)
        for old in generations() where old != n && old != previous { eraseGeneration(old) }
        return Credential(generation: n, key: key, chain: chain, metadata: metadata)
    }

    /// The new generation has completed a broker connection: the previous
    /// one is no longer needed as a fallback, so its key is erased.
    package func commitCurrent() {
        guard let current = currentGeneration() else { return }
        for old in generations() where old != current { eraseGeneration(old) }
    }

    /// The broker refused the current generation: make generation `n` current
    /// again (it must still load and verify at `now`) and erase the refused one.
    package func revert(to n: Int, trust: [Certificate], now: Date) throws(FileError) -> Credential {
        let refused = currentGeneration()
        let credential = try load(n, trust: trust, now: now).get()
        try point(to: n)
        if let refused, refused != n { eraseGeneration(refused) }
        return credential
    }

    /// Atomically re-points `current` (symlink to a temp name, rename over).
    private func point(to n: Int) throws(FileError) {
        let tmp = "\(directory)/current.tmp"
        unlink(tmp)
        guard symlink("gen-\(n)", tmp) == 0 else { throw .errno(tmp, "symlink") }
        guard rename(tmp, currentLink) == 0 else { throw .errno(currentLink, "rename") }
        try AtomicFile.syncDirectory(of: currentLink)
    }

    /// Erases every credential (revocation, retirement), unfinished installs
    /// included: keys are overwritten before unlink.
    package func eraseAll() {
        unlink(currentLink)
        unlink("\(directory)/current.tmp")
        for n in generations() { eraseGeneration(n) }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for name in names where name.hasPrefix("tmp-gen-") { eraseTree("\(directory)/\(name)") }
        }
        _ = try? AtomicFile.syncDirectory(of: currentLink)
    }

    private func eraseGeneration(_ n: Int) {
        eraseTree(generationDirectory(n))
    }

    /// Wipes the key file in a generation-shaped directory, then removes it.
    private func eraseTree(_ dir: String) {
        wipe("\(dir)/key.pem")
        removeTree(dir)
    }

    /// Overwrites a file with zeros and fsyncs before unlinking it, so the key
    /// does not linger in the file's old blocks (best effort on flash/COW media).
    private func wipe(_ path: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd >= 0 {
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_size > 0 {
                let zeros = [UInt8](repeating: 0, count: Int(st.st_size))
                _ = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                fsync(fd)
            }
            close(fd)
        }
        unlink(path)
    }

    private func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}
