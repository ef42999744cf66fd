import Foundation
import Shared

/// Answers enrollment and renewal requests. The controller builds every
/// extension itself (CN and SPIFFE URI = the device, CA:FALSE,
/// digitalSignature, clientAuth); nothing is copied from the CSR. A repeated
/// request (same request id, same key) gets the certificate already issued.
package struct IssuanceService: Sendable {
    package let store: Store
    package let register: DeviceRegister
    /// The issuing CAs: `active` signs, any live one vouches for a re-enrollment (a CA rotation swaps them).
    package let authorities: AuthorityRing
    package let trustDomain: String
    package let backdate: Duration
    package let clock: @Sendable () -> Date

    package init(store: Store, register: DeviceRegister, authority: IssuingAuthority, trustDomain: String, backdate: Duration,
                 clock: @escaping @Sendable () -> Date) {
        self.init(store: store, register: register, authorities: AuthorityRing(authority), trustDomain: trustDomain, backdate: backdate, clock: clock)
    }

    package init(store: Store, register: DeviceRegister, authorities: AuthorityRing, trustDomain: String, backdate: Duration,
                 clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.register = register
        self.authorities = authorities
        self.trustDomain = trustDomain
        self.backdate = backdate
        self.clock = clock
    }

    static let maxCSRBytes = 8192

    /// Request ids are echoed in replies and stored: keep them short and plain.
    static func isValidRequestID(_ id: String) -> Bool {
        (8...64).contains(id.utf8.count) && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }
    }

    // MARK: enrollment

    package func enroll(_ request: EnrollRequest, topicDevice: DeviceID) -> CertificateReply {
        answer("enroll", topicDevice, request.requestId) { try enrollOrThrow(request, topicDevice: topicDevice) }
    }

    /// Turns a refusal into a coded reply (and an audit entry); an unexpected
    /// failure is logged in full but answered with a plain `internal`.
    private func answer(_ action: String, _ device: DeviceID, _ requestID: String, _ body: () throws -> CertificateReply) -> CertificateReply {
        do {
            return try body()
        } catch let error as WireError {
            audit(action, device, outcome: error.code, detail: error.message)
            return .failure(requestID, error)
        } catch {
            audit(action, device, outcome: "internal", detail: "\(error)")
            return .failure(requestID, WireError(.internal, "the controller could not issue a certificate"))
        }
    }

    private func enrollOrThrow(_ request: EnrollRequest, topicDevice: DeviceID) throws -> CertificateReply {
        guard request.deviceId == topicDevice else {
            throw WireError(.identityMismatch, "request names \(request.deviceId) on \(topicDevice)'s topic")
        }
        if let proof = request.reenrollment {
            return try reenroll(request, proof: proof, device: topicDevice)
        }
        let checked = try checkDevice(topicDevice, request.requestId, request.csr, allowed: [.approved, .active])
        let (policy, csr, device) = (checked.policy, checked.csr, checked.device)
        // A device registered to bootstrap with its factory identity must not enroll with a token (NHI4, insecure authentication).
        let method = device.attributes?.bootstrapMethod ?? "token"
        guard method == "token", policy.policy.bootstrapMethods.contains("token") else {
            throw WireError(.policyViolation, "device \(topicDevice) bootstraps with \(method) (class allows \(policy.policy.bootstrapMethods.joined(separator: ", "))); token enrollment refused")
        }
        if let existing = try previouslyIssued(checked, requestID: request.requestId) { return existing }
        guard let tokenText = request.token else { throw WireError(.badToken, "an enrollment needs a token or a re-enrollment proof") }
        let tokenHash = DeviceRegister.hashToken(tokenText)
        let now = checked.now
        let signed = try? sign(checked)
        return try store.transaction { db in
            guard let token = try db.query("SELECT expires_at, used_at FROM enrollment_tokens WHERE token_hash = ? AND device_id = ?",
                                            [.text(tokenHash), .text(topicDevice.rawValue)]).first else {
                throw WireError(.badToken, "the enrollment token is not valid for \(topicDevice)")
            }
            guard token[1] == .null else { throw WireError(.tokenUsed, "the enrollment token was already used") }
            guard (token[0].int ?? 0) > Int64(now.timeIntervalSince1970) else { throw WireError(.tokenExpired, "the enrollment token has expired") }
            try db.query("UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ?", [.int(Int64(now.timeIntervalSince1970)), .text(tokenHash)])
            let reply = try issue(db, checked, signed, requestID: request.requestId, kind: "enroll")
            try db.query("UPDATE devices SET state = 'active' WHERE id = ?", [.text(topicDevice.rawValue)])
            try db.audit(time: now, actor: "device:\(topicDevice)", action: "enroll", target: topicDevice.rawValue, outcome: "ok",
                         detail: "serial=\(reply.serial ?? "") agent=\(String(request.agentVersion.prefix(32)))")
            return reply
        }
    }

    // MARK: re-enrollment after expiry

    /// The device proves it holds the key of the newest certificate issued to
    /// it; the class must allow it and the certificate must have expired
    /// within the class's window. An older or revoked certificate never
    /// qualifies, so a key stolen from an earlier generation is worth nothing.
    private func reenroll(_ request: EnrollRequest, proof: ReenrollmentProof, device: DeviceID) throws -> CertificateReply {
        let checked = try checkDevice(device, request.requestId, request.csr, allowed: [.active])
        let policy = checked.policy.policy
        guard policy.reenrollAfterExpiry else {
            throw WireError(.reenrollmentNotAllowed, "class \(policy.name) does not allow re-enrollment after expiry; an operator must approve \(device) again")
        }
        if let existing = try previouslyIssued(checked, requestID: request.requestId) { return existing }
        let now = checked.now
        let previous = try proof.verify(device: device, requestID: request.requestId, csrPEM: request.csr, now: now,
                                        skewTolerance: backdate.timeInterval)
        guard authorities.issuer(of: previous) != nil else {
            throw WireError(.badReenrollment, "the previous certificate was not issued by any of this controller's issuing CAs")
        }
        let expiredFor = now.timeIntervalSince(previous.notAfter)
        guard expiredFor <= policy.reenrollWindow.timeInterval else {
            throw WireError(.reenrollmentWindowPassed, "the certificate expired \(Int(expiredFor)) s ago; class \(policy.name) allows \(Int(policy.reenrollWindow.timeInterval)) s")
        }
        let signed = try? sign(checked)
        return try store.transaction { db in
            // The newest certificate issued to this device, whatever its state.
            guard let newest = try db.query("SELECT serial, revoked_at FROM certificates WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC LIMIT 1",
                                            [.text(device.rawValue)]).first,
                  newest[0].text == previous.serialHex else {
                throw WireError(.badReenrollment, "serial \(previous.serialHex) is not the newest certificate issued to \(device)")
            }
            guard newest[1] == .null else { throw WireError(.revoked, "certificate \(previous.serialHex) was revoked") }
            // Recorded as an enrollment (the register knows enroll and renew); the audit entry says reenroll.
            let reply = try issue(db, checked, signed, requestID: request.requestId, kind: "enroll")
            try db.audit(time: now, actor: "device:\(device)", action: "reenroll", target: device.rawValue, outcome: "ok",
                         detail: "serial=\(reply.serial ?? "") previous=\(previous.serialHex) expired_for=\(Int(expiredFor))s agent=\(String(request.agentVersion.prefix(32)))")
            return reply
        }
    }

    // MARK: renewal

    package func renew(_ request: RenewRequest, device: DeviceID) -> CertificateReply {
        answer("renew", device, request.requestId) {
            let checked = try checkDevice(device, request.requestId, request.csr, allowed: [.active])
            if let existing = try previouslyIssued(checked, requestID: request.requestId) { return existing }
            let now = checked.now
            let signed = try? sign(checked)
            return try store.transaction { db in
                let reply = try issue(db, checked, signed, requestID: request.requestId, kind: "renew")
                try db.audit(time: now, actor: "device:\(device)", action: "renew", target: device.rawValue, outcome: "ok",
                             detail: "serial=\(reply.serial ?? "") previous=\(String(request.currentSerial.prefix(40))) reason=\(String(request.reason.prefix(16)))")
                return reply
            }
        }
    }

    // MARK: shared checks

    /// What the checks outside the writer found: the device as committed, the
    /// parsed and verified CSR, its class policy, and from the same read
    /// snapshot the certificate already issued for this request id (if any)
    /// and the TTL exception that applies now (checked again in the transaction).
    private struct Checked {
        var policy: (policy: DeviceClassPolicy, version: Int)
        var csr: CertificateSigningRequest
        var device: DeviceView
        var deviceID: DeviceID
        var now: Date
        /// key_fingerprint, chain_pem, serial, not_before, not_after, issued_at, revoked_at
        var previous: SQLRow?
        var ttlException: ExceptionView?
    }

    private func checkDevice(_ id: DeviceID, _ requestID: String, _ csrPEM: String, allowed: Set<DeviceState>) throws -> Checked {
        guard IssuanceService.isValidRequestID(requestID) else { throw WireError(.badRequest, "requestId must be 8 to 64 letters, digits or dashes") }
        let now = clock()
        let device: DeviceView
        let previous: SQLRow?
        let ttlException: ExceptionView?
        // State, class and owners only: the certificate history `show` adds is not needed on every request.
        // Read from committed data without waiting for the writer (Store.read), in one snapshot with
        // the answer already given to this request id and the TTL exception.
        do {
            (device, previous, ttlException) = try store.read { db in
                let device = try register.view(db, id: id.rawValue, withCertificates: false)
                let previous = try db.query("""
                    SELECT key_fingerprint, chain_pem, serial, not_before, not_after, issued_at, revoked_at FROM certificates
                    WHERE device_id = ? AND request_id = ?
                    """, [.text(id.rawValue), .text(requestID)]).first
                let exception = previous == nil
                    ? try ExceptionRegister(store: store, register: register, clock: clock).active(db, device: device, control: .ttlAboveMax, now: now)
                    : nil
                return (device, previous, exception)
            }
        } catch let e as WireError where e.code == WireError.Code.notFound.rawValue {
            throw WireError(.notRegistered, "device \(id) is not in the register")
        }
        let state = DeviceState(rawValue: device.state)
        if state == .revoked || state == .retired { throw WireError(.revoked, "device \(id) is \(device.state)") }
        if state == .suspended { throw WireError(.suspended, "device \(id) is suspended; an operator must resume it") }
        guard let state, allowed.contains(state) else {
            throw WireError(state == .registered ? .notApproved : .invalidTransition, "device \(id) is \(device.state)")
        }
        guard device.missingOwners.isEmpty else {
            throw WireError(.ownersMissing, "device \(id) has no owner for: \(device.missingOwners.joined(separator: ", "))")
        }
        guard let versioned = register.policies.current(device.deviceClass) else {
            throw WireError(.policyViolation, "device class \(device.deviceClass) is not configured")
        }
        guard csrPEM.utf8.count <= IssuanceService.maxCSRBytes else { throw WireError(.badCSR, "CSR larger than \(IssuanceService.maxCSRBytes) bytes") }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pem: csrPEM) } catch { throw WireError(.badCSR, "CSR does not parse") }
        guard csr.verifySignature() else { throw WireError(.badCSR, "CSR signature does not verify") }
        guard csr.commonName == id.rawValue else {
            throw WireError(.identityMismatch, "CSR subject CN \(csr.commonName ?? "(none)") is not \(id)")
        }
        let policy = versioned.policy
        let algorithm = csr.publicKey.algorithm.name
        guard policy.keyAlgorithms.contains(algorithm) else {
            throw WireError(.keyTypeNotAllowed, "key \(algorithm) is not allowed for class \(policy.name) (allowed: \(policy.keyAlgorithms.joined(separator: ", ")))")
        }
        guard let deviceID = DeviceID(device.id) else { throw WireError(.internal, "malformed id in the register") }
        return Checked(policy: versioned, csr: csr, device: device, deviceID: deviceID, now: now, previous: previous, ttlException: ttlException)
    }

    /// The certificate already issued for this request id and key, if any; a
    /// reused request id with a different key is refused.
    /// Committed certificates only (Store.read, in `checkDevice`): a request is handled after
    /// the earlier requests of the same device have been answered, hence committed.
    private func previouslyIssued(_ checked: Checked, requestID: String) throws -> CertificateReply? {
        guard let row = checked.previous else { return nil }
        guard row[0].text == checked.csr.publicKey.fingerprint else { throw WireError(.badRequest, "request id \(requestID) was used with another key") }
        guard row[6] == .null else { throw WireError(.revoked, "that certificate was revoked") }
        return CertificateReply(requestId: requestID, status: "issued", chain: row[1].text, trustBundle: authorities.bundlePEM,
                                serial: row[2].text, notBefore: row[3].int, notAfter: row[4].int, issuedAt: row[5].int,
                                renewAt: checked.policy.policy.renewAt)
    }

    /// A certificate signed before the writer's transaction, and what it was signed with.
    private struct Signed {
        var certificate: Certificate
        var chainPEM: String
        var authority: IssuingAuthority
        var ttl: TimeInterval
        var ttlNote: String?
    }

    /// The TTL for this issuance: the class's, or an approved, unexpired
    /// `ttl_above_max` exception's (with the note that goes into the audit trail).
    private func ttl(_ policy: DeviceClassPolicy, exception: ExceptionView?) throws -> (TimeInterval, String?) {
        var ttl = policy.ttl.timeInterval
        var note: String?
        if let exception, let exceptionTTL = exception.ttl {
            ttl = TimeInterval(exceptionTTL)
            note = "ttl_above_max:exception=\(exception.id)"
        }
        guard ttl <= policy.maxTTL.timeInterval || note != nil else {
            throw WireError(.policyViolation, "TTL above the class maximum")
        }
        return (ttl, note)
    }

    /// Signs the certificate outside the writer's transaction (the workers sign
    /// in parallel; the transaction only checks and records). The TTL comes from
    /// the read snapshot; `issue` checks it again inside the transaction and
    /// signs again in the rare case that an exception changed in between.
    /// A certificate whose checks then fail is dropped: never recorded, never
    /// sent. The callers ignore a failure here (`try?`): `issue` then signs in
    /// the transaction, so refusals come in the same order as before.
    private func sign(_ checked: Checked, ttl known: (TimeInterval, String?)? = nil) throws -> Signed {
        let (ttl, note) = try known ?? ttl(checked.policy.policy, exception: checked.ttlException)
        let device = checked.deviceID
        var template = CertificateTemplate(commonName: device.rawValue, serial: CertificateTemplate.randomSerial(),
                                           notBefore: checked.now.addingTimeInterval(-backdate.timeInterval),
                                           notAfter: checked.now.addingTimeInterval(ttl))
        template.keyUsage = [.digitalSignature]
        template.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
        template.uriSANs = [device.spiffeID(trustDomain: trustDomain)]
        // One snapshot for the whole issuance: a CA rotation may swap the active CA meanwhile.
        let authority = authorities.active
        let cert = try CertificateIssuer.sign(template, subjectKey: checked.csr.publicKey, issuer: authority.certificate, issuerKey: authority.key)
        return Signed(certificate: cert, chainPEM: Certificate.pem(of: [cert, authority.certificate]), authority: authority, ttl: ttl, ttlNote: note)
    }

    /// Checks and records a certificate under the class policy (and any
    /// approved, unexpired exception): one key per device, a new key for every
    /// certificate when the class rotates keys, TTL at most the class maximum.
    private func issue(_ db: SQLiteConnection, _ checked: Checked, _ presigned: Signed?, requestID: String, kind: String) throws -> CertificateReply {
        let policy = checked.policy.policy
        let view = checked.device
        let device = checked.deviceID
        let now = checked.now
        let exceptions = ExceptionRegister(store: store, register: register, clock: clock)
        let fingerprint = checked.csr.publicKey.fingerprint
        var notes: [String] = []
        let holders = try db.query("SELECT DISTINCT device_id FROM certificates WHERE key_fingerprint = ?", [.text(fingerprint)])
        for owner in holders {
            if owner[0].text != device.rawValue {
                // Never relaxed by an exception: a key shared between devices is a shared identity.
                throw WireError(.keyReused, "this public key is already bound to another device")
            }
            if policy.rotateKeys || view.rotationRequired != nil {
                guard let exception = try exceptions.active(db, device: view, control: .keyReuse, now: now) else {
                    throw WireError(.keyReused, view.rotationRequired.map { "a new key is required after \($0)" }
                                    ?? "class \(policy.name) requires a new key for every certificate")
                }
                notes.append("key_reuse:exception=\(exception.id)")
            }
        }
        // The TTL decided again on the writer's view; if an exception appeared,
        // expired or changed since the snapshot, the certificate is signed again.
        let decided = try ttl(policy, exception: try exceptions.active(db, device: view, control: .ttlAboveMax, now: now))
        let signed: Signed
        if let presigned, presigned.ttl == decided.0, presigned.ttlNote == decided.1 {
            signed = presigned
        } else {
            signed = try sign(checked, ttl: decided)
        }
        if let note = signed.ttlNote { notes.append(note) }
        let cert = signed.certificate
        let chain = signed.chainPEM
        let authority = signed.authority
        let notBefore = Int64(cert.notBefore.timeIntervalSince1970)
        let notAfter = Int64(cert.notAfter.timeIntervalSince1970)
        let issuedAt = Int64(now.timeIntervalSince1970)
        try db.query("""
            INSERT INTO certificates(serial, device_id, kind, request_id, key_fingerprint, not_before, not_after, issued_at, chain_pem, issuer, policy_version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(cert.serialHex), .text(device.rawValue), .text(kind), .text(requestID), .text(fingerprint),
                  .int(notBefore), .int(notAfter), .int(issuedAt), .text(chain), .text(authority.certificate.commonName ?? ""),
                  .int(Int64(checked.policy.version))])
        // A new key satisfies a pending rotation (transfer, firmware or vendor change).
        if view.rotationRequired != nil && holders.isEmpty {
            try db.query("UPDATE devices SET rotation_required = NULL WHERE id = ?", [.text(device.rawValue)])
        }
        // An exception that relaxed this issuance is part of the evidence.
        if !notes.isEmpty {
            try db.audit(time: now, actor: "device:\(device)", action: "exception.applied", target: device.rawValue, outcome: "ok",
                         detail: "serial=\(cert.serialHex) \(notes.joined(separator: " "))")
        }
        return CertificateReply(requestId: requestID, status: "issued", chain: chain, trustBundle: authority.bundlePEM, serial: cert.serialHex,
                                notBefore: notBefore, notAfter: notAfter, issuedAt: issuedAt, renewAt: policy.renewAt)
    }

    private func audit(_ action: String, _ device: DeviceID, outcome: String, detail: String) {
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: "device:\(device)", action: action, target: device.rawValue, outcome: outcome, detail: detail)
        }
    }
}
