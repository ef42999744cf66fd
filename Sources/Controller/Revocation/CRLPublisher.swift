import Foundation
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Writes the issuing CA's CRL where the broker reads it (`crlfile`) and
/// makes the broker re-read it. Mosquitto loads `crlfile` at start and on
/// SIGHUP; an expired CRL makes it refuse every client, so `refreshIfDue`
/// rewrites it well before nextUpdate.
package struct CRLPublisher: Sendable {
    package let store: Store
    package let authority: IssuingAuthority
    package let path: String
    package let validity: Duration
    package let refreshBefore: Duration
    package let brokerPIDFile: String?
    package let brokerReloadCommand: String?
    package let clock: @Sendable () -> Date
    package let log: Logger

    package init(store: Store, authority: IssuingAuthority, configuration: ControllerConfiguration, clock: @escaping @Sendable () -> Date, log: Logger) {
        self.store = store
        self.authority = authority
        path = configuration.crlFile
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

    /// Builds a CRL of every revoked certificate that has not expired yet,
    /// with the next CRL number, and writes it atomically (0644: the broker reads it).
    @discardableResult
    package func publish() throws -> Published {
        let now = clock()
        let (number, revoked) = try store.transaction { db -> (UInt64, [RevokedCertificate]) in
            let number = (UInt64(try db.meta("crl_number") ?? "0") ?? 0) + 1
            try db.setMeta("crl_number", String(number))
            let rows = try db.query("SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY serial",
                                    [.int(Int64(now.timeIntervalSince1970))])
            let revoked = rows.map {
                RevokedCertificate(serialHex: $0[0].text ?? "", revokedAt: Date(timeIntervalSince1970: TimeInterval($0[1].int ?? 0)),
                                   reason: RevocationReason(rawValue: Int($0[2].int ?? 0)) ?? .unspecified)
            }
            return (number, revoked)
        }
        let nextUpdate = now.addingTimeInterval(validity.timeInterval)
        let crl = try CertificateRevocationList.make(issuer: authority.certificate, issuerKey: authority.key, number: number,
                                                     thisUpdate: now.addingTimeInterval(-60), nextUpdate: nextUpdate, revoked: revoked)
        try AtomicFile.write(crl.pem, to: path, mode: 0o644)
        try store.withConnection { db in
            try db.setMeta("crl_next_update", String(Int64(nextUpdate.timeIntervalSince1970)))
            // Time to revoke (for the revocation-SLA evidence): when each revocation first reached a written CRL.
            let t = Int64(now.timeIntervalSince1970)
            try db.query("""
                UPDATE devices SET revocation_published_at = ?
                WHERE revoked_at IS NOT NULL AND revocation_published_at IS NULL AND revoked_at <= ?
                """, [.int(t), .int(t)])
        }
        log.info("CRL published", ["number": String(number), "revoked": String(revoked.count), "path": path])
        return Published(number: number, nextUpdate: nextUpdate)
    }

    /// The CRL currently on disk, if it parses.
    package func current() -> CertificateRevocationList? {
        guard let text = try? AtomicFile.readText(path) else { return nil }
        return try? CertificateRevocationList(pem: text)
    }

    /// Republishes when the CRL on disk is missing, unreadable, or within
    /// `refreshBefore` of its nextUpdate. Returns true when it wrote one.
    @discardableResult
    package func refreshIfDue() throws -> Bool {
        if let crl = current(), let next = crl.nextUpdate, next.timeIntervalSince(clock()) > refreshBefore.timeInterval {
            return false
        }
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
