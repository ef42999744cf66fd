import Foundation
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Writes the CRLs where the broker reads them and makes the broker re-read
/// them: the active issuing CA's CRL in `crlfile`, and every live issuing
/// CA's CRL as `HASH.r0` in the broker's `capath` directory (two CAs issue
/// during a rotation, and Mosquitto 2.0.11 reads only the first CRL of a
/// `crlfile`; docs/ca-rotation.md). Mosquitto loads them at start and on
/// SIGHUP; an expired CRL makes it refuse every client of that CA, so
/// `refreshIfDue` rewrites them well before nextUpdate. A retired CA's file
/// is removed: with no CRL for it, the broker refuses its certificates.
package struct CRLPublisher: Sendable {
    package let store: Store
    package let authorities: AuthorityRing
    package let path: String
    package let directory: String
    package let validity: Duration
    package let refreshBefore: Duration
    package let brokerPIDFile: String?
    package let brokerReloadCommand: String?
    package let clock: @Sendable () -> Date
    package let log: Logger

    package init(store: Store, authority: IssuingAuthority, configuration: ControllerConfiguration, clock: @escaping @Sendable () -> Date, log: Logger) {
        self.init(store: store, authorities: AuthorityRing(authority), configuration: configuration, clock: clock, log: log)
    }

    package init(store: Store, authorities: AuthorityRing, configuration: ControllerConfiguration, clock: @escaping @Sendable () -> Date, log: Logger) {
        self.store = store
        self.authorities = authorities
        path = configuration.crlFile
        directory = configuration.crlDirectory
        validity = configuration.crlValidity
        refreshBefore = configuration.crlRefreshBefore
        brokerPIDFile = configuration.brokerPIDFile
        brokerReloadCommand = configuration.brokerReloadCommand
        self.clock = clock
        self.log = log
    }

    package struct Published: Sendable {
        package var number: UInt64
        package var nextUpdate: Date
    }

    /// Where the broker's `capath` lookup finds `authority`'s CRL.
    package func directoryFile(for authority: IssuingAuthority) -> String {
        "\(directory)/\(authority.certificate.subjectNameHash).r0"
    }

    /// Builds, for every live issuing CA, a CRL of the certificates it issued
    /// that are revoked and not yet expired, all with the next CRL number, and
    /// writes them atomically (0644: the broker reads them).
    @discardableResult
    package func publish() throws -> Published {
        let now = clock()
        let live = authorities.live
        let active = authorities.active
        let (number, lists) = try store.transaction { db -> (UInt64, [(IssuingAuthority, [RevokedCertificate])]) in
            let number = (UInt64(try db.meta("crl_number") ?? "0") ?? 0) + 1
            try db.setMeta("crl_number", String(number))
            let lists = try live.map { authority -> (IssuingAuthority, [RevokedCertificate]) in
                // Rows from before the issuer was recorded belong to generation 1, the only CA then.
                let rows = try db.query("""
                    SELECT serial, revoked_at, revocation_reason FROM certificates
                    WHERE revoked_at IS NOT NULL AND not_after > ? AND (issuer = ? OR (? AND coalesce(issuer, '') = '')) ORDER BY serial
                    """, [.int(Int64(now.timeIntervalSince1970)), .text(authority.certificate.commonName ?? ""), .int(authority.generation == 1 ? 1 : 0)])
                return (authority, rows.map {
                    RevokedCertificate(serialHex: $0[0].text ?? "", revokedAt: Date(timeIntervalSince1970: TimeInterval($0[1].int ?? 0)),
                                       reason: RevocationReason(rawValue: Int($0[2].int ?? 0)) ?? .unspecified)
                })
            }
            return (number, lists)
        }
        let nextUpdate = now.addingTimeInterval(validity.timeInterval)
        try makeDirectory()
        var written: Set<String> = []
        var revokedCount = 0
        for (authority, revoked) in lists {
            let crl = try CertificateRevocationList.make(issuer: authority.certificate, issuerKey: authority.key, number: number,
                                                         thisUpdate: now.addingTimeInterval(-60), nextUpdate: nextUpdate, revoked: revoked)
            if authority.generation == active.generation { try AtomicFile.write(crl.pem, to: path, mode: 0o644) }
            let file = directoryFile(for: authority)
            try AtomicFile.write(crl.pem, to: file, mode: 0o644)
            written.insert(file)
            revokedCount += revoked.count
        }
        removeStaleFiles(keeping: written)
        try store.withConnection { db in
            try db.setMeta("crl_next_update", String(Int64(nextUpdate.timeIntervalSince1970)))
            // Time to revoke (for the revocation-SLA evidence): when each revocation first reached a written CRL.
            let t = Int64(now.timeIntervalSince1970)
            try db.query("""
                UPDATE devices SET revocation_published_at = ?
                WHERE revoked_at IS NOT NULL AND revocation_published_at IS NULL AND revoked_at <= ?
                """, [.int(t), .int(t)])
        }
        log.info("CRL published", ["number": String(number), "revoked": String(revokedCount), "path": path,
                                   "issuing_cas": live.map { String($0.generation) }.joined(separator: ",")])
        return Published(number: number, nextUpdate: nextUpdate)
    }

    /// World-readable: the broker runs as its own user.
    private func makeDirectory() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw WireError(.internal, "cannot create the CRL directory \(directory): \(String(cString: strerror(errno)))")
        }
        chmod(directory, 0o755)
    }

    /// Only files named like a hashed CRL (`8 hex digits`.r`N`): nothing else in the directory is ours to delete.
    private func removeStaleFiles(keeping: Set<String>) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where CRLPublisher.isHashedCRLName(name) {
            let file = "\(directory)/\(name)"
            if !keeping.contains(file) {
                unlink(file)
                log.notice("CRL of a retired issuing CA removed", ["file": file])
            }
        }
    }

    static func isHashedCRLName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts[0].count == 8 && parts[0].allSatisfy(\.isHexDigit)
            && parts[1].hasPrefix("r") && parts[1].count >= 2 && parts[1].dropFirst().allSatisfy(\.isNumber)
    }

    /// The active CA's CRL currently on disk, if it parses.
    package func current() -> CertificateRevocationList? {
        read(path)
    }

    private func read(_ file: String) -> CertificateRevocationList? {
        guard let text = try? AtomicFile.readText(file) else { return nil }
        return try? CertificateRevocationList(pem: text)
    }

    /// Every CRL file the broker reads (the active CA's `crlfile`, then each
    /// live CA's hashed file) with its nextUpdate, nil when missing or unreadable.
    package func files() -> [(path: String, nextUpdate: Date?)] {
        ([path] + authorities.live.map(directoryFile(for:))).map { ($0, read($0)?.nextUpdate) }
    }

    /// Republishes when any live CA's CRL is missing, unreadable, or within
    /// `refreshBefore` of its nextUpdate. Returns true when it wrote them.
    @discardableResult
    package func refreshIfDue() throws -> Bool {
        let fresh = files().allSatisfy { file in
            guard let next = file.nextUpdate else { return false }
            return next.timeIntervalSince(clock()) > refreshBefore.timeInterval
        }
        if fresh { return false }
        try publish()
        reloadBroker()
        return true
    }

    /// Tells the broker to re-read its CRL: SIGHUP to the pid in `pid_file`,
    /// or the configured reload command. Returns whether a reload was sent.
    @discardableResult
    package func reloadBroker() -> Bool {
        if let pidFile = brokerPIDFile {
            guard let text = try? AtomicFile.readText(pidFile, limit: 64), let pid = Int32(text.trimmed()), pid > 1 else {
                log.error("cannot read the broker pid", ["pid_file": pidFile])
                return false
            }
            guard kill(pid, SIGHUP) == 0 else {
                log.error("cannot signal the broker", ["pid": String(pid), "error": String(cString: strerror(errno))])
                return false
            }
            log.info("broker reloaded", ["pid": String(pid)])
            return true
        }
        if let command = brokerReloadCommand {
            let status = runShell(command)
            if status == 0 { log.info("broker reloaded", ["command": command]); return true }
            log.error("broker reload command failed", ["command": command, "status": String(status)])
            return false
        }
        log.warning("no broker pid_file or reload_command configured: the broker keeps its old CRL until restarted")
        return false
    }

    private func runShell(_ command: String) -> Int32 {
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        guard case .success(let pid) = CleanSpawn.spawn("/bin/sh", ["-c", command], environment: environment) else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return CleanSpawn.exitStatus(status)
    }
}
