import Foundation
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Rotation of the issuing CA with a running fleet (docs/ca-rotation.md),
/// after SPIRE's prepare → activate → taint → revoke:
///
/// 1. **trusting** — a new issuing CA (generation N+1) is made under the same
///    root; the broker trusts it (bundle, its CRL in the hashed directory,
///    reload); every device gets a signed `bundle` command adding it, and
///    the rotation waits for the acknowledgements (or `bundle_timeout`).
/// 2. **reissuing** — the new CA becomes the one that issues; the service
///    certificates (broker, admin API, controller, command signer) are made
///    again from it; a campaign (`ca.rotated`, selector `issuer=` the old CA)
///    rotates every device still holding a certificate from the old CA.
/// 3. **retiring** — when no device holds one any more, every device gets
///    the bundle without the old CA (`replace`), then the broker stops
///    trusting it (its CRL is removed: the broker refuses its certificates),
///    and its key is destroyed.
///
/// A device never loses its connection beyond the reconnect with its new
/// certificate: each step only adds trust until nothing needs the old CA.
/// Every step is persisted before it acts, and the tick resumes a rotation
/// where a restarted controller left it. Anything that needs an operator
/// (a failed campaign, devices left on the old CA) stops in **stalled**,
/// with the reason; `ca retire` then finishes it.
package final class CARotation: @unchecked Sendable {
    let layout: PKILayout
    let store: Store
    let register: DeviceRegister
    let authorities: AuthorityRing
    let crl: CRLPublisher
    let commands: CommandSender
    let campaigns: CampaignService
    /// Cuts the live sessions of devices whose certificates `ca retire` revokes (nil in unit tests).
    let sessions: (any SessionCutter)?
    let trustDomain: String
    let clock: @Sendable () -> Date
    let log: Logger
    /// One operator call or tick at a time: each reads the phase and acts on it.
    private let lock = NSLock()
    /// Trust-bundle commands of a step that may be unanswered at once, as a
    /// campaign's in-flight window: the step goes as fast as devices answer.
    /// A device silent for `CampaignService.inFlightAge` stops counting, so
    /// unanswering devices cannot hold the step up.
    static let maxInFlight = 1000

    package init(layout: PKILayout, store: Store, register: DeviceRegister, authorities: AuthorityRing, crl: CRLPublisher,
                 commands: CommandSender, campaigns: CampaignService, sessions: (any SessionCutter)? = nil, trustDomain: String,
                 clock: @escaping @Sendable () -> Date, log: Logger) {
        self.sessions = sessions
        self.layout = layout
        self.store = store
        self.register = register
        self.authorities = authorities
        self.crl = crl
        self.commands = commands
        self.campaigns = campaigns
        self.trustDomain = trustDomain
        self.clock = clock
        self.log = log
    }

    private struct Rotation {
        var id: String
        var from: Int
        var to: Int
        var phase: String
        var phaseStartedAt: Int64
        var bundleTimeout: Int64
        var maxPerMinute: Int
        var deviceTimeout: Int
        var campaignID: String?
        var reason: String
    }

    // MARK: operator calls

    package func status() throws -> CAStatusView {
        try store.withConnection { db in try view(db) }
    }

    package func rotate(_ p: CARotateParams, actor: String) throws -> CAStatusView {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw WireError(.badRequest, message) } }
        let reason = p.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        try check(!reason.isEmpty && reason.count <= 256, "a reason (1 to 256 characters) is required")
        try check((1...CampaignRollout.unlimitedPerMinute).contains(p.maxPerMinute), "maxPerMinute must be 1 to \(CampaignRollout.unlimitedPerMinute)")
        try check((5...(7 * 86400)).contains(p.bundleTimeout), "bundleTimeout must be 5 s to 7 days")
        try check((5...(7 * 86400)).contains(p.deviceTimeout), "deviceTimeout must be 5 s to 7 days")
        lock.lock()
        defer { lock.unlock() }
        let now = clock()
        if let running = try store.withConnection({ try current($0) }), running.phase != "completed" {
            throw WireError(.invalidTransition, "CA rotation \(running.id) is \(running.phase); finish it first (lanyard-controller ca status)")
        }
        let active = authorities.active
        let generation = (try store.withConnection { db in try db.query("SELECT max(generation) FROM ca_generations").first?.first?.int } ?? 1) + 1
        let next = try makeIssuingCA(generation: Int(generation), now: now)

        // Trust first: the broker and the controller's own bundle name the new CA before anything is issued from it.
        let bundle = try writeBundle(authorities.live + [next])
        let id = "rot-" + String(makeRequestID().prefix(12))
        let t = Int64(now.timeIntervalSince1970)
        try store.transaction { db in
            try AuthorityRing.record(db, next, state: "prepared", now: now)
            try db.query("""
                INSERT INTO ca_rotations(id, from_generation, to_generation, phase, phase_started_at, bundle_timeout, max_per_minute, device_timeout,
                                         reason, created_by, created_at)
                VALUES (?, ?, ?, 'trusting', ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .int(Int64(active.generation)), .int(generation), .int(t), .int(Int64(p.bundleTimeout)), .int(Int64(p.maxPerMinute)),
                      .int(Int64(p.deviceTimeout)), .text(reason), .text(actor), .int(t)])
            try queueBundle(db, rotation: id, step: "trust")
            try db.audit(time: now, actor: actor, action: "ca.rotate.start", target: id, outcome: "ok",
                         detail: "from=\(active.generation) to=\(generation) new_ca=\(next.certificate.serialHex) reason=\(reason.prefix(128))")
        }
        authorities.replace(active: active, live: authorities.live + [next], bundlePEM: bundle)
        try crl.publish()
        crl.reloadBroker()
        log.notice("CA rotation started: the broker trusts the new issuing CA; sending it to the devices",
                   ["rotation": id, "from": String(active.generation), "to": String(generation)])
        return try status()
    }

    /// Finishes a stalled rotation: what the old CA issued and is still
    /// valid is revoked (superseded) — those devices must enroll again —
    /// and the old CA is retired.
    package func retire(_ p: CARetireParams, actor: String) throws -> CAStatusView {
        let reason = p.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= 256 else { throw WireError(.badRequest, "a reason (1 to 256 characters) is required") }
        lock.lock()
        defer { lock.unlock() }
        guard let rotation = try store.withConnection({ try current($0) }) else { throw WireError(.notFound, "no CA rotation to retire") }
        guard rotation.phase == "stalled" || rotation.phase == "reissuing" else {
            throw WireError(.invalidTransition, "CA rotation \(rotation.id) is \(rotation.phase); ca retire finishes a stalled or re-issuing rotation")
        }
        if rotation.phase == "reissuing", let campaign = rotation.campaignID,
           (try? campaigns.status(CampaignRef(id: campaign), withDevices: false).state).map({ ["running", "paused", "draft"].contains($0) }) == true {
            _ = try? campaigns.cancel(CampaignRef(id: campaign, reason: "CA retired by \(actor)"), actor: actor)
        }
        let old = try issuerName(rotation.from)
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        let stranded = try store.transaction { db -> [String] in
            let stranded = try db.query("""
                SELECT DISTINCT device_id FROM certificates WHERE issuer = ? AND revoked_at IS NULL AND not_after > ? ORDER BY device_id
                """, [.text(old), .int(t)]).compactMap { $0[0].text }
            try db.query("""
                UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE issuer = ? AND revoked_at IS NULL AND not_after > ?
                """, [.int(t), .int(Int64(RevocationReason.superseded.rawValue)), .text(old), .int(t)])
            try db.audit(time: now, actor: actor, action: "ca.retire", target: rotation.id, outcome: "ok",
                         detail: "generation=\(rotation.from) revoked_devices=\(stranded.count) devices=\(stranded.prefix(20).joined(separator: ",")) reason=\(reason.prefix(128))")
            try beginRetiring(db, rotation, now: t)
            return stranded
        }
        try crl.publish()
        crl.reloadBroker()
        // TLS checks certificates only at the handshake: a device still connected on a certificate just revoked is cut off now.
        if let sessions, !stranded.isEmpty {
            var cut = 0
            sessions.cut(stranded.compactMap(DeviceID.init)) { _, outcome in if outcome.cut { cut += 1 } }
            try store.withConnection { db in
                try db.audit(time: clock(), actor: actor, action: "ca.retire.sessions", target: rotation.id, outcome: "ok",
                             detail: "cut=\(cut) of \(stranded.count)")
            }
        }
        return try status()
    }

    // MARK: the tick

    /// Advances the current rotation by what has happened since the last tick.
    package func tick() {
        lock.lock()
        defer { lock.unlock() }
        do {
            guard let rotation = try store.withConnection({ try current($0) }) else { return }
            let now = Int64(clock().timeIntervalSince1970)
            switch rotation.phase {
            case "trusting":
                try sendBundles(rotation, step: "trust", replace: false)
                if try bundleStepDone(rotation, step: "trust", now: now) { try activate(rotation) }
            case "reissuing":
                try checkReissue(rotation, now: now)
            case "retiring":
                try sendBundles(rotation, step: "final", replace: true)
                if try bundleStepDone(rotation, step: "final", now: now) { try finishRetiring(rotation) }
            case "completed":
                // A controller stopped between recording the retirement and destroying the key finishes the job here.
                let key = layout.issuingKey(generation: rotation.from)
                if FileManager.default.fileExists(atPath: key) { destroyKey(key) }
            default:
                return
            }
        } catch {
            log.error("CA rotation step failed; retried at the next tick", ["error": "\(error)"])
        }
    }

    /// Every device that was sent the bundle acknowledged it (or refused it),
    /// or `bundle_timeout` has passed: those that did not are listed in the
    /// audit entry of the next step and still trust the root.
    private func bundleStepDone(_ r: Rotation, step: String, now: Int64) throws -> Bool {
        let counts = try bundleCounts(r.id, step: step)
        return counts.answered == counts.devices || now - r.phaseStartedAt >= r.bundleTimeout
    }

    private func activate(_ r: Rotation) throws {
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        guard let next = authorities.live.first(where: { $0.generation == r.to }) else {
            throw WireError(.internal, "issuing CA \(r.to) is not loaded")
        }
        let counts = try bundleCounts(r.id, step: "trust")
        // Service certificates first: the command signer's chain must name the CA that issues from now on.
        let signer = try reissueServiceCertificates(from: next, now: now)
        commands.replaceSigner(signer)
        try store.transaction { db in
            try db.query("UPDATE ca_generations SET state = 'active', activated_at = ? WHERE generation = ?", [.int(t), .int(Int64(r.to))])
            try db.query("UPDATE ca_generations SET state = 'retiring' WHERE generation = ?", [.int(Int64(r.from))])
            try db.audit(time: now, actor: "ca-rotation", action: "ca.rotate.activate", target: r.id, outcome: "ok",
                         detail: "active=\(r.to) bundle_acknowledged=\(counts.acknowledged)/\(counts.devices) refused=\(counts.refused)")
        }
        authorities.replace(active: next, live: authorities.live, bundlePEM: authorities.bundlePEM)
        try crl.publish()
        crl.reloadBroker()  // the broker's new server certificate
        let old = try issuerName(r.from)
        var campaignID: String?
        do {
            let rollout = CampaignRollout(maxPerMinute: r.maxPerMinute, deviceTimeout: r.deviceTimeout, retries: 2,
                                          window: Int(max(r.bundleTimeout, 86400)))
            let created = try campaigns.create(CampaignCreateParams(trigger: "ca.rotated", reason: "CA rotation \(r.id): re-issue from CA \(r.to)",
                                                                    selector: "issuer=\(old)", rollout: rollout),
                                               register: register, actor: "ca-rotation")
            _ = try campaigns.start(CampaignRef(id: created.id), actor: "ca-rotation")
            campaignID = created.id
        } catch let error as WireError where error.code == WireError.Code.badRequest.rawValue && error.message.contains("matches no device") {
            campaignID = nil  // nothing holds a certificate from the old CA
        }
        try store.withConnection { db in
            try db.query("UPDATE ca_rotations SET phase = 'reissuing', phase_started_at = ?, campaign_id = ? WHERE id = ?",
                         [.int(t), campaignID.map { .text($0) } ?? .null, .text(r.id)])
        }
        log.notice("CA rotation: the new issuing CA is active; re-issuing every device", ["rotation": r.id, "campaign": campaignID ?? "-"])
    }

    private func checkReissue(_ r: Rotation, now: Int64) throws {
        if let id = r.campaignID {
            let campaign = try campaigns.status(CampaignRef(id: id), withDevices: false)
            switch campaign.state {
            case "completed": break
            case "aborted", "cancelled":
                try stall(r, "campaign \(id) \(campaign.state)\(campaign.endReason.map { ": \($0)" } ?? ""); fix and run `ca retire`, or start a campaign with selector issuer=… yourself")
                return
            default: return
            }
        }
        let remaining = try devicesOnOldCA(r, now: now)
        if !remaining.isEmpty {
            try stall(r, "\(remaining.count) device(s) still hold a valid certificate from CA \(r.from): \(remaining.prefix(10).joined(separator: ", ")); "
                      + "rotate them (campaign selector issuer=…) or `ca retire` revokes those certificates")
            return
        }
        try store.transaction { db in try beginRetiring(db, r, now: now) }
    }

    private func beginRetiring(_ db: SQLiteConnection, _ r: Rotation, now: Int64) throws {
        try db.query("UPDATE ca_rotations SET phase = 'retiring', phase_started_at = ?, detail = NULL WHERE id = ?", [.int(now), .text(r.id)])
        try queueBundle(db, rotation: r.id, step: "final")
        try db.audit(time: clock(), actor: "ca-rotation", action: "ca.rotate.retiring", target: r.id, outcome: "ok",
                     detail: "generation=\(r.from): sending the bundle without it")
    }

    private func finishRetiring(_ r: Rotation) throws {
        let now = clock()
        let t = Int64(now.timeIntervalSince1970)
        let counts = try bundleCounts(r.id, step: "final")
        let remainingLive = authorities.live.filter { $0.generation != r.from }
        guard let active = remainingLive.first(where: { $0.generation == r.to }) else { throw WireError(.internal, "issuing CA \(r.to) is not loaded") }
        let bundle = try writeBundle(remainingLive)
        let oldName = try issuerName(r.from)
        try store.transaction { db in
            // What the old CA issued and is still valid by date was superseded by the campaign (or `ca retire`):
            // revoked in the register, so nothing counts it as live; the broker refuses it once the CA's CRL is gone.
            let superseded = try db.query("SELECT count(*) FROM certificates WHERE issuer = ? AND revoked_at IS NULL AND not_after > ?",
                                          [.text(oldName), .int(t)]).first?.first?.int ?? 0
            try db.query("UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE issuer = ? AND revoked_at IS NULL AND not_after > ?",
                         [.int(t), .int(Int64(RevocationReason.superseded.rawValue)), .text(oldName), .int(t)])
            try db.query("UPDATE ca_generations SET state = 'retired', retired_at = ? WHERE generation = ?", [.int(t), .int(Int64(r.from))])
            try db.query("UPDATE ca_rotations SET phase = 'completed', phase_started_at = ?, ended_at = ?, detail = NULL WHERE id = ?",
                         [.int(t), .int(t), .text(r.id)])
            try db.audit(time: now, actor: "ca-rotation", action: "ca.rotate.complete", target: r.id, outcome: "ok",
                         detail: "retired=\(r.from) active=\(r.to) superseded=\(superseded) bundle_acknowledged=\(counts.acknowledged)/\(counts.devices) refused=\(counts.refused)")
        }
        authorities.replace(active: active, live: remainingLive, bundlePEM: bundle)
        // Its CRL leaves the broker's directory: the broker refuses whatever the old CA issued.
        try crl.publish()
        crl.reloadBroker()
        destroyKey(layout.issuingKey(generation: r.from))
        log.notice("CA rotation completed: the old issuing CA is retired and its key destroyed", ["rotation": r.id, "retired": String(r.from)])
    }

    private func stall(_ r: Rotation, _ why: String) throws {
        try store.withConnection { db in
            try db.query("UPDATE ca_rotations SET phase = 'stalled', phase_started_at = ?, detail = ? WHERE id = ?",
                         [.int(Int64(clock().timeIntervalSince1970)), .text(why), .text(r.id)])
            try db.audit(time: clock(), actor: "ca-rotation", action: "ca.rotate.stalled", target: r.id, outcome: "stalled", detail: String(why.prefix(512)))
        }
        log.warning("CA rotation stalled", ["rotation": r.id, "reason": why])
    }

    // MARK: trust bundles

    /// Every device that holds or may soon hold a certificate gets the bundle.
    private func queueBundle(_ db: SQLiteConnection, rotation: String, step: String) throws {
        try db.query("""
            INSERT OR IGNORE INTO ca_rotation_devices(rotation_id, step, device_id)
            SELECT ?, ?, id FROM devices WHERE state IN ('active', 'suspended')
            """, [.text(rotation), .text(step)])
    }

    /// Sends the next batch: each row is marked with its command's jti as it goes out.
    private func sendBundles(_ r: Rotation, step: String, replace: Bool) throws {
        let now = Int64(clock().timeIntervalSince1970)
        let pending = try store.withConnection { db -> [DeviceID] in
            let unanswered = try db.query("""
                SELECT count(*) FROM ca_rotation_devices r LEFT JOIN commands c ON c.jti = r.jti
                WHERE r.rotation_id = ? AND r.step = ? AND r.jti IS NOT NULL AND r.sent_at > ? AND c.outcome IS NULL
                """, [.text(r.id), .text(step), .int(now - CampaignService.inFlightAge)]).first?.first?.int ?? 0
            let room = Int64(CARotation.maxInFlight) - unanswered
            guard room > 0 else { return [] }
            return try db.query("SELECT device_id FROM ca_rotation_devices WHERE rotation_id = ? AND step = ? AND jti IS NULL ORDER BY device_id LIMIT ?",
                                [.text(r.id), .text(step), .int(room)]).compactMap { $0[0].text.flatMap(DeviceID.init) }
        }
        guard !pending.isEmpty else { return }
        // The trust step adds the new CA to what devices have; the final one is exactly root + the CAs that stay.
        let bundle = replace ? try bundlePEM(authorities.live.filter { $0.generation != r.from }) : authorities.bundlePEM
        let args = ["bundle": bundle, "replace": replace ? "true" : "false"]
        // Signed and sent on several lanes; their register writes share COMMITs (Store.transaction's group commit).
        let lanes = min(CampaignService.sendLanes, pending.count)
        MessageWorkers.runLanes(lanes) { [self] lane in
            for device in stride(from: lane, to: pending.count, by: lanes).map({ pending[$0] }) {
                guard let jti = commands.sendReturningID(to: device, command: "bundle", args: args) else { continue }
                do {
                    try store.transaction { db in
                        try db.query("UPDATE ca_rotation_devices SET jti = ?, sent_at = ? WHERE rotation_id = ? AND step = ? AND device_id = ?",
                                     [.text(jti), .int(Int64(clock().timeIntervalSince1970)), .text(r.id), .text(step), .text(device.rawValue)])
                    }
                } catch {
                    log.error("CA rotation: cannot record the bundle command", ["device": device.rawValue, "error": "\(error)"])
                }
            }
        }
    }

    private struct BundleCounts {
        var devices = 0, sent = 0, acknowledged = 0, refused = 0
        var answered: Int { acknowledged + refused }
    }

    private func bundleCounts(_ rotation: String, step: String) throws -> BundleCounts {
        try store.withConnection { db in try bundleCounts(db, rotation, step: step) }
    }

    private func bundleCounts(_ db: SQLiteConnection, _ rotation: String, step: String) throws -> BundleCounts {
        do {
            let row = try db.query("""
                SELECT count(*), count(r.jti), sum(c.outcome = 'done'), sum(c.outcome IS NOT NULL AND c.outcome != 'done')
                FROM ca_rotation_devices r LEFT JOIN commands c ON c.jti = r.jti
                WHERE r.rotation_id = ? AND r.step = ?
                """, [.text(rotation), .text(step)]).first ?? []
            func n(_ i: Int) -> Int { i < row.count ? Int(row[i].int ?? 0) : 0 }
            return BundleCounts(devices: n(0), sent: n(1), acknowledged: n(2), refused: n(3))
        }
    }

    /// Root first, then every issuing CA still trusted; the broker's `cafile`
    /// and the controller's own trust. Returns the PEM.
    private func writeBundle(_ live: [IssuingAuthority]) throws -> String {
        let pem = try bundlePEM(live)
        try AtomicFile.write(pem, to: layout.bundle, mode: 0o644)
        return pem
    }

    private func bundlePEM(_ live: [IssuingAuthority]) throws -> String {
        let root = try Certificate(pem: AtomicFile.readText(layout.rootCertificate))
        return Certificate.pem(of: [root] + live.sorted { $0.generation < $1.generation }.map(\.certificate))
    }

    // MARK: the CAs' files

    /// Generation N of the issuing CA: from files an operator placed (signed
    /// by an offline root), or made now with the root key.
    private func makeIssuingCA(generation: Int, now: Date) throws -> IssuingAuthority {
        let certPath = layout.issuingCertificate(generation: generation), keyPath = layout.issuingKey(generation: generation)
        let root = try Certificate(pem: AtomicFile.readText(layout.rootCertificate))
        let fm = FileManager.default
        if fm.fileExists(atPath: certPath) && fm.fileExists(atPath: keyPath) {
            let placed = try IssuingAuthority.load(layout, generation: generation)
            guard placed.certificate.isCA, placed.certificate.isIssued(by: root), placed.certificate.notAfter > now.addingTimeInterval(86400) else {
                throw WireError(.badRequest, "\(certPath) is not a CA certificate issued by the root CA and valid for more than a day")
            }
            return placed
        }
        guard fm.fileExists(atPath: layout.rootKey) else {
            throw WireError(.rootKeyOffline, "the root CA key \(layout.rootKey) is not on this host: bring it online for the rotation, "
                            + "or sign issuing CA \(generation) offline and place it as \(certPath) and \(keyPath)")
        }
        let rootKey = try PrivateKey(pem: AtomicFile.readText(layout.rootKey))
        let key = try PrivateKey.generateP256()
        let template = PKIInitializer.authorityTemplate(PKIInitializer.issuingCAName(generation: generation), trustDomain: trustDomain,
                                                        years: 3, pathLength: 0, now: now)
        let cert = try CertificateIssuer.sign(template, subjectKey: key.publicKey, issuer: root, issuerKey: rootKey)
        try AtomicFile.write(key.pkcs8PEM(), to: keyPath, mode: 0o600)
        try AtomicFile.write(cert.pem, to: certPath, mode: 0o644)
        return try IssuingAuthority.load(layout, generation: generation)
    }

    /// The broker, admin API, controller and command-signer certificates,
    /// new keys, from `authority`. The broker takes its new certificate at
    /// the reload; the controller's MQTT client at its next connection; the
    /// admin API at the controller's next start (until then its certificate
    /// from the old CA still chains to the root every client trusts).
    private func reissueServiceCertificates(from authority: IssuingAuthority, now: Date) throws -> CommandSigner {
        let brokerNames = (try? Certificate(pem: AtomicFile.readText(layout.brokerCertificate)).dnsSANs) ?? []
        var signer: CommandSigner?
        for service in PKIInitializer.serviceCertificates(layout: layout, trustDomain: trustDomain, brokerNames: brokerNames) {
            let key = try PrivateKey.generateP256()
            let cert = try service.sign(subjectKey: key.publicKey, issuer: authority.certificate, issuerKey: authority.key, now: now)
            try AtomicFile.write(key.pkcs8PEM(), to: service.key, mode: 0o600)
            try AtomicFile.write(Certificate.pem(of: [cert, authority.certificate]), to: service.certificate, mode: 0o644)
            if service.certificate == layout.commandSignerCertificate { signer = CommandSigner(key: key, chain: [cert, authority.certificate]) }
        }
        guard let signer else { throw WireError(.internal, "no command-signer certificate among the service certificates") }
        return signer
    }

    /// Overwrites, then removes, a retired CA's key: nothing it could sign is trusted any more.
    private func destroyKey(_ path: String) {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int, let handle = FileHandle(forWritingAtPath: path) {
            handle.write(Data(repeating: 0, count: size))
            try? handle.synchronize()
            try? handle.close()
        }
        if unlink(path) != 0 && errno != ENOENT {
            log.error("cannot remove the retired CA's key", ["path": path, "error": String(cString: strerror(errno))])
        }
    }

    // MARK: reading

    private func current(_ db: SQLiteConnection) throws -> Rotation? {
        guard let row = try db.query("""
            SELECT id, from_generation, to_generation, phase, phase_started_at, bundle_timeout, max_per_minute, device_timeout, campaign_id, reason
            FROM ca_rotations ORDER BY created_at DESC, rowid DESC LIMIT 1
            """).first else { return nil }
        return Rotation(id: row[0].text ?? "", from: Int(row[1].int ?? 0), to: Int(row[2].int ?? 0), phase: row[3].text ?? "",
                        phaseStartedAt: row[4].int ?? 0, bundleTimeout: row[5].int ?? 0, maxPerMinute: Int(row[6].int ?? 0),
                        deviceTimeout: Int(row[7].int ?? 0), campaignID: row[8].text, reason: row[9].text ?? "")
    }

    private func issuerName(_ generation: Int) throws -> String {
        try store.withConnection { db in try issuerName(db, generation) }
    }

    private func issuerName(_ db: SQLiteConnection, _ generation: Int) throws -> String {
        do {
            guard let name = try db.query("SELECT common_name FROM ca_generations WHERE generation = ?", [.int(Int64(generation))]).first?.first?.text else {
                throw WireError(.internal, "no issuing CA generation \(generation)")
            }
            return name
        }
    }

    /// Devices (not revoked or retired) whose newest certificate is from the old CA and still valid.
    private func devicesOnOldCA(_ r: Rotation, now: Int64) throws -> [String] {
        try store.withConnection { db in try devicesOnOldCA(db, r, now: now) }
    }

    private func devicesOnOldCA(_ db: SQLiteConnection, _ r: Rotation, now: Int64) throws -> [String] {
        let old = try issuerName(db, r.from)
        do {
            return try db.query("""
                SELECT c.device_id FROM certificates c JOIN devices d ON d.id = c.device_id
                WHERE c.issuer = ? AND c.revoked_at IS NULL AND c.not_after > ? AND d.state NOT IN ('revoked', 'retired')
                  AND c.rowid = (SELECT rowid FROM certificates WHERE device_id = c.device_id ORDER BY issued_at DESC, rowid DESC LIMIT 1)
                ORDER BY c.device_id
                """, [.text(old), .int(now)]).compactMap { $0[0].text }
        }
    }

    private func view(_ db: SQLiteConnection) throws -> CAStatusView {
        let now = Int64(clock().timeIntervalSince1970)
        let generations = try db.query("""
            SELECT g.generation, g.common_name, g.serial, g.state, g.not_after,
                   (SELECT count(*) FROM certificates c WHERE c.issuer = g.common_name AND c.revoked_at IS NULL AND c.not_after > ?)
            FROM ca_generations g ORDER BY g.generation
            """, [.int(now)]).map {
            CAGenerationView(generation: Int($0[0].int ?? 0), commonName: $0[1].text ?? "", serial: $0[2].text ?? "", state: $0[3].text ?? "",
                             notAfter: $0[4].int ?? 0, liveCertificates: Int($0[5].int ?? 0))
        }
        guard let r = try current(db) else { return CAStatusView(generations: generations, rotation: nil) }
        let row = try db.query("SELECT created_by, created_at, ended_at, detail FROM ca_rotations WHERE id = ?", [.text(r.id)]).first ?? []
        var v = CARotationView(id: r.id, fromGeneration: r.from, toGeneration: r.to, phase: r.phase, phaseStartedAt: r.phaseStartedAt,
                               reason: r.reason, createdBy: row.first?.text ?? "", createdAt: row.count > 1 ? row[1].int ?? 0 : 0)
        v.endedAt = row.count > 2 ? row[2].int : nil
        v.detail = row.count > 3 ? row[3].text : nil
        v.campaignId = r.campaignID
        // A rotation stalls only while re-issuing: until it retires, the first bundle is the one that counts.
        let step = ["trusting", "reissuing", "stalled"].contains(r.phase) ? "trust" : "final"
        let counts = try bundleCounts(db, r.id, step: step)
        v.bundleDevices = counts.devices
        v.bundleSent = counts.sent
        v.bundleAcknowledged = counts.acknowledged
        v.bundleRefused = counts.refused
        if r.phase != "trusting" && r.phase != "completed" { v.remainingOnOldCA = try devicesOnOldCA(db, r, now: now).count }
        return CAStatusView(generations: generations, rotation: v)
    }
}
