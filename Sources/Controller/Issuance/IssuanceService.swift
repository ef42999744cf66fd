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
        let (policy, csr, device) = try checkDevice(topicDevice, request.requestId, request.csr, allowed: [.approved, .active])
        // A device registered to bootstrap with its factory identity must not enroll with a token (NHI4, insecure authentication).
        let method = device.attributes?.bootstrapMethod ?? "token"
        guard method == "token", policy.policy.bootstrapMethods.contains("token") else {
            throw WireError(.policyViolation, "device \(topicDevice) bootstraps with \(method) (class allows \(policy.policy.bootstrapMethods.joined(separator: ", "))); token enrollment refused")
        }
        if let existing = try previouslyIssued(topicDevice, requestID: request.requestId, key: csr.publicKey, policy: policy.policy) { return existing }
        guard let tokenText = request.token else { throw WireError(.badToken, "an enrollment needs a token or a re-enrollment proof") }
        let tokenHash = DeviceRegister.hashToken(tokenText)
        let now = clock()
        return try store.transaction { db in
            guard let token = try db.query("SELECT expires_at, used_at FROM enrollment_tokens WHERE token_hash = ? AND device_id = ?",
                                            [.text(tokenHash), .text(topicDevice.rawValue)]).first else {
                throw WireError(.badToken, "the enrollment token is not valid for \(topicDevice)")
            }
            guard token[1] == .null else { throw WireError(.tokenUsed, "the enrollment token was already used") }
            guard (token[0].int ?? 0) > Int64(now.timeIntervalSince1970) else { throw WireError(.tokenExpired, "the enrollment token has expired") }
            try db.query("UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ?", [.int(Int64(now.timeIntervalSince1970)), .text(tokenHash)])
            let reply = try issue(db, device: device, csr: csr, policy: policy, requestID: request.requestId, kind: "enroll", now: now)
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
        let (versioned, csr, view) = try checkDevice(device, request.requestId, request.csr, allowed: [.active])
        let policy = versioned.policy
        guard policy.reenrollAfterExpiry else {
            throw WireError(.reenrollmentNotAllowed, "class \(policy.name) does not allow re-enrollment after expiry; an operator must approve \(device) again")
        }
        if let existing = try previouslyIssued(device, requestID: request.requestId, key: csr.publicKey, policy: policy) { return existing }
        let now = clock()
        let previous = try proof.verify(device: device, requestID: request.requestId, csrPEM: request.csr, now: now,
                                        skewTolerance: backdate.timeInterval)
        guard authorities.issuer(of: previous) != nil else {
            throw WireError(.badReenrollment, "the previous certificate was not issued by any of this controller's issuing CAs")
        }
        let expiredFor = now.timeIntervalSince(previous.notAfter)
        guard expiredFor <= policy.reenrollWindow.timeInterval else {
            throw WireError(.reenrollmentWindowPassed, "the certificate expired \(Int(expiredFor)) s ago; class \(policy.name) allows \(Int(policy.reenrollWindow.timeInterval)) s")
        }
        return try store.transaction { db in
            // The newest certificate issued to this device, whatever its state.
            guard let newest = try db.query("SELECT serial, revoked_at FROM certificates WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC LIMIT 1",
                                            [.text(device.rawValue)]).first,
                  newest[0].text == previous.serialHex else {
                throw WireError(.badReenrollment, "serial \(previous.serialHex) is not the newest certificate issued to \(device)")
            }
            guard newest[1] == .null else { throw WireError(.revoked, "certificate \(previous.serialHex) was revoked") }
            // Recorded as an enrollment (the register knows enroll and renew); the audit entry says reenroll.
            let reply = try issue(db, device: view, csr: csr, policy: versioned, requestID: request.requestId, kind: "enroll", now: now)
            try db.audit(time: now, actor: "device:\(device)", action: "reenroll", target: device.rawValue, outcome: "ok",
                         detail: "serial=\(reply.serial ?? "") previous=\(previous.serialHex) expired_for=\(Int(expiredFor))s agent=\(String(request.agentVersion.prefix(32)))")
            return reply
        }
    }

    // MARK: renewal

    package func renew(_ request: RenewRequest, device: DeviceID) -> CertificateReply {
        answer("renew", device, request.requestId) {
            let (policy, csr, view) = try checkDevice(device, request.requestId, request.csr, allowed: [.active])
            if let existing = try previouslyIssued(device, requestID: request.requestId, key: csr.publicKey, policy: policy.policy) { return existing }
            let now = clock()
            return try store.transaction { db in
                let reply = try issue(db, device: view, csr: csr, policy: policy, requestID: request.requestId, kind: "renew", now: now)
                try db.audit(time: now, actor: "device:\(device)", action: "renew", target: device.rawValue, outcome: "ok",
                             detail: "serial=\(reply.serial ?? "") previous=\(String(request.currentSerial.prefix(40))) reason=\(String(request.reason.prefix(16)))")
                return reply
            }
        }
    }

    // MARK: shared checks

    private func checkDevice(_ id: DeviceID, _ requestID: String, _ csrPEM: String, allowed: Set<DeviceState>) throws
        -> ((policy: DeviceClassPolicy, version: Int), CertificateSigningRequest, DeviceView) {
        guard IssuanceService.isValidRequestID(requestID) else { throw WireError(.badRequest, "requestId must be 8 to 64 letters, digits or dashes") }
        let device: DeviceView
        // State, class and owners only: the certificate history `show` adds is not needed on every request.
        // Read from committed data without waiting for the writer (Store.read).
        do {
            device = try store.read { try register.view($0, id: id.rawValue, withCertificates: false) }
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
        return (versioned, csr, device)
    }

    /// The certificate already issued for this request id and key, if any; a
    /// reused request id with a different key is refused.
    /// Committed certificates only (Store.read): a request is handled after
    /// the earlier requests of the same device have been answered, hence committed.
    private func previouslyIssued(_ id: DeviceID, requestID: String, key: PublicKey, policy: DeviceClassPolicy) throws -> CertificateReply? {
        try store.read { db in
            guard let row = try db.query("""
                SELECT key_fingerprint, chain_pem, serial, not_before, not_after, issued_at, revoked_at FROM certificates
                WHERE device_id = ? AND request_id = ?
                """, [.text(id.rawValue), .text(requestID)]).first else { return nil }
            guard row[0].text == key.fingerprint else { throw WireError(.badRequest, "request id \(requestID) was used with another key") }
            guard row[6] == .null else { throw WireError(.revoked, "that certificate was revoked") }
            return CertificateReply(requestId: requestID, status: "issued", chain: row[1].text, trustBundle: authorities.bundlePEM,
                                    serial: row[2].text, notBefore: row[3].int, notAfter: row[4].int, issuedAt: row[5].int, renewAt: policy.renewAt)
        }
    }

    /// Signs and records a certificate under the class policy (and any
    /// approved, unexpired exception): one key per device, a new key for every
    /// certificate when the class rotates keys, TTL at most the class maximum.
    private func issue(_ db: SQLiteConnection, device view: DeviceView, csr: CertificateSigningRequest, policy versioned: (policy: DeviceClassPolicy, version: Int),
                       requestID: String, kind: String, now: Date) throws -> CertificateReply {
        let policy = versioned.policy
        guard let device = DeviceID(view.id) else { throw WireError(.internal, "malformed id in the register") }
        let exceptions = ExceptionRegister(store: store, register: register, clock: clock)
        let fingerprint = csr.publicKey.fingerprint
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
        var ttl = policy.ttl.timeInterval
        if let exception = try exceptions.active(db, device: view, control: .ttlAboveMax, now: now), let exceptionTTL = exception.ttl {
            ttl = TimeInterval(exceptionTTL)
            notes.append("ttl_above_max:exception=\(exception.id)")
        }
        guard ttl <= policy.maxTTL.timeInterval || notes.contains(where: { $0.hasPrefix("ttl_above_max") }) else {
            throw WireError(.policyViolation, "TTL above the class maximum")
        }
        var template = CertificateTemplate(commonName: device.rawValue, serial: CertificateTemplate.randomSerial(),
                                           notBefore: now.addingTimeInterval(-backdate.timeInterval),
                                           notAfter: now.addingTimeInterval(ttl))
        template.keyUsage = [.digitalSignature]
        template.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
        template.uriSANs = [device.spiffeID(trustDomain: trustDomain)]
        // One snapshot for the whole issuance: a CA rotation may swap the active CA meanwhile.
        let authority = authorities.active
        let cert = try CertificateIssuer.sign(template, subjectKey: csr.publicKey, issuer: authority.certificate, issuerKey: authority.key)
        let chain = Certificate.pem(of: [cert, authority.certificate])
        let notBefore = Int64(cert.notBefore.timeIntervalSince1970)
        let notAfter = Int64(cert.notAfter.timeIntervalSince1970)
        let issuedAt = Int64(now.timeIntervalSince1970)
        try db.query("""
            INSERT INTO certificates(serial, device_id, kind, request_id, key_fingerprint, not_before, not_after, issued_at, chain_pem, issuer, policy_version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(cert.serialHex), .text(device.rawValue), .text(kind), .text(requestID), .text(fingerprint),
                  .int(notBefore), .int(notAfter), .int(issuedAt), .text(chain), .text(authority.certificate.commonName ?? ""), .int(Int64(versioned.version))])
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
