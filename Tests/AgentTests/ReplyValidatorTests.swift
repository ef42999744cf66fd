import Foundation
import Testing

@testable import Agent
import Shared

@Suite("ReplyValidator: nothing is installed unless it is ours and chains to the installed bundle")
struct ReplyValidatorTests {
    let pki: AgentTestPKI
    let device = DeviceID("gw-1")!
    let key: PrivateKey
    var now: Date { referenceTime.addingTimeInterval(60) }

    init() throws {
        pki = try AgentTestPKI()
        key = try PrivateKey.generateP256()
    }

    func reply(_ chain: [Certificate]) -> CertificateReply {
        CertificateReply(requestId: "req-12345678", status: "issued", chain: Certificate.pem(of: chain), trustBundle: Certificate.pem(of: pki.bundle),
                         serial: chain.first?.serialHex, issuedAt: Int64(referenceTime.timeIntervalSince1970), renewAt: 0.66)
    }

    func invalidReason(_ outcome: ReplyValidator.Outcome) -> String? {
        if case .invalid(let why) = outcome { return why }
        return nil
    }

    @Test("the right certificate is accepted with its chain")
    func accepts() throws {
        let chain = try pki.issueDevice("gw-1", key: key)
        guard case .issued(let accepted) = ReplyValidator.check(reply(chain), pendingKey: key, device: device, trust: pki.bundle, now: now) else {
            Issue.record("refused a good certificate")
            return
        }
        #expect(accepted == chain)
    }

    @Test("a certificate for another key is refused")
    func anotherKey() throws {
        let chain = try pki.issueDevice("gw-1", key: try PrivateKey.generateP256())
        #expect(invalidReason(ReplyValidator.check(reply(chain), pendingKey: key, device: device, trust: pki.bundle, now: now)) == "certificate is for another key")
    }

    @Test("a certificate for another device is refused (by CN and by SPIFFE id)")
    func anotherDevice() throws {
        let byCN = try pki.issueDevice("gw-2", key: key)
        #expect(invalidReason(ReplyValidator.check(reply(byCN), pendingKey: key, device: device, trust: pki.bundle, now: now))?.contains("gw-2") == true)
        let byURI = try pki.issueDevice("gw-1", key: key, uri: "spiffe://test.lanyard/device/gw-2")
        #expect(invalidReason(ReplyValidator.check(reply(byURI), pendingKey: key, device: device, trust: pki.bundle, now: now)) != nil)
    }

    @Test("a certificate from another CA is refused even when the reply carries that CA as its bundle")
    func anotherCA() throws {
        let rogue = try AgentTestPKI()
        let chain = try rogue.issueDevice("gw-1", key: key)
        var r = reply(chain)
        r.trustBundle = Certificate.pem(of: rogue.bundle)
        let reason = invalidReason(ReplyValidator.check(r, pendingKey: key, device: device, trust: pki.bundle, now: now))
        #expect(reason?.hasPrefix("certificate does not verify") == true)
    }

    @Test("an expired (or not yet valid) certificate is refused when the controller's issuedAt does not vouch for it either")
    func expired() throws {
        let chain = try pki.issueDevice("gw-1", key: key, ttl: 3600)
        let later = referenceTime.addingTimeInterval(3601)
        var stale = reply(chain)
        stale.issuedAt = Int64(later.timeIntervalSince1970)
        #expect(invalidReason(ReplyValidator.check(stale, pendingKey: key, device: device, trust: pki.bundle, now: later))?.contains("expired") == true)
        stale.issuedAt = nil
        #expect(invalidReason(ReplyValidator.check(stale, pendingKey: key, device: device, trust: pki.bundle, now: later))?.contains("expired") == true)
        let earlier = referenceTime.addingTimeInterval(-3600)
        stale.issuedAt = Int64(earlier.timeIntervalSince1970)
        #expect(invalidReason(ReplyValidator.check(stale, pendingKey: key, device: device, trust: pki.bundle, now: earlier)) != nil)
    }

    @Test("a device clock a day ahead or an hour behind still accepts a certificate valid at the controller's issuedAt")
    func skewedClock() throws {
        let chain = try pki.issueDevice("gw-1", key: key, ttl: 3600)
        for skew in [86400.0, -3600, 300, -300] {
            let outcome = ReplyValidator.check(reply(chain), pendingKey: key, device: device, trust: pki.bundle, now: now.addingTimeInterval(skew))
            guard case .issued = outcome else { Issue.record("skew \(skew): \(outcome)"); continue }
        }
        // The skew fallback never rescues a certificate for another key.
        let other = try pki.issueDevice("gw-1", key: PrivateKey.generateP256(), ttl: 3600)
        #expect(invalidReason(ReplyValidator.check(reply(other), pendingKey: key, device: device, trust: pki.bundle, now: now.addingTimeInterval(86400))) != nil)
    }

    @Test("a certificate without clientAuth is refused")
    func noClientAuth() throws {
        let chain = try pki.issueDevice("gw-1", key: key, eku: [ExtendedKeyUsage.serverAuth])
        #expect(invalidReason(ReplyValidator.check(reply(chain), pendingKey: key, device: device, trust: pki.bundle, now: now)) != nil)
    }

    @Test("an error reply is passed on as a refusal with its code and retryAfter")
    func errorReply() {
        let r = CertificateReply.failure("req-12345678", WireError(.rateLimited, "slow down"), retryAfter: 30)
        guard case .refused(let error, let retryAfter) = ReplyValidator.check(r, pendingKey: key, device: device, trust: pki.bundle, now: now) else {
            Issue.record("an error reply was not a refusal")
            return
        }
        #expect(error.code == "rate_limited")
        #expect(retryAfter == 30)
    }

    @Test("an issued reply without a readable chain is invalid")
    func noChain() {
        var r = CertificateReply(requestId: "req-12345678", status: "issued")
        #expect(invalidReason(ReplyValidator.check(r, pendingKey: key, device: device, trust: pki.bundle, now: now)) != nil)
        r.chain = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        #expect(invalidReason(ReplyValidator.check(r, pendingKey: key, device: device, trust: pki.bundle, now: now)) != nil)
    }
}
