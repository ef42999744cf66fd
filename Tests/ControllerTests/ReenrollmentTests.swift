import Foundation
import Testing

@testable import Controller
import Shared

/// Re-enrollment after expiry: allowed only by class policy, only with the
/// key of the newest certificate issued to the device, never a revoked one,
/// and only within the class's window.
@Suite("Issuance: re-enrollment after expiry")
struct ReenrollmentTests {
    /// A `roamer` device (reenroll_after_expiry = true, window 2 d, TTL 1 d), enrolled, then left offline for `offline` seconds.
    func expiredRoamer(_ f: ControllerFixture, offline: TimeInterval = 86400 + 3600) throws -> (PrivateKey, [Certificate]) {
        let (key, reply) = try f.enrolled("gw-roam", class: "roamer")
        let chain = try Certificate.chain(fromPEM: try #require(reply.chain))
        f.clock.advance(offline)
        return (key, chain)
    }

    @Test("a device whose class allows it re-enrolls with its expired key; the new certificate is for the new key and verifies with openssl")
    func reenrollAllowed() throws {
        let f = try ControllerFixture()
        let (oldKey, oldChain) = try expiredRoamer(f)
        #expect(oldChain[0].notAfter < f.clock.now)
        let newKey = try PrivateKey.generateP256()
        let reply = try f.reenroll("gw-roam", newKey: newKey, previousKey: oldKey, previousChain: oldChain)
        try #require(reply.status == "issued", "\(String(describing: reply.error))")
        let chain = try Certificate.chain(fromPEM: try #require(reply.chain))
        #expect(chain[0].publicKey == newKey.publicKey)
        #expect(chain[0].notAfter == f.clock.now.addingTimeInterval(86400))
        #expect(try f.register.show("gw-roam").serial == chain[0].serialHex)
        #expect(try f.sqlite("SELECT action || ' ' || outcome FROM audit WHERE action = 'reenroll'") == "reenroll ok\n")
        // Independent check: the new leaf verifies against the issuing CA at the controller's time.
        let leaf = try f.write("reenrolled.pem", chain[0].pem)
        let out = try f.openssl(["verify", "-partial_chain", "-attime", String(Int(f.clock.now.timeIntervalSince1970)),
                                 "-CAfile", f.layout.issuingCertificate, leaf]).stdout
        #expect(out.contains(": OK"))
    }

    @Test("refused: class without re-enrollment; window passed; an older certificate; a revoked device; a forged or mismatched proof")
    func reenrollRefusals() throws {
        // The default class forbids it.
        do {
            let f = try ControllerFixture()
            let (key, reply) = try f.enrolled("gw-sensor")
            f.clock.advance(2 * 86400)
            let r = try f.reenroll("gw-sensor", newKey: try PrivateKey.generateP256(), previousKey: key,
                                   previousChain: try Certificate.chain(fromPEM: try #require(reply.chain)))
            #expect(r.error?.code == "reenrollment_not_allowed")
        }
        // Expired longer ago than the window (2 d).
        do {
            let f = try ControllerFixture()
            let (key, chain) = try expiredRoamer(f, offline: 86400 + 2 * 86400 + 60)
            let r = try f.reenroll("gw-roam", newKey: try PrivateKey.generateP256(), previousKey: key, previousChain: chain)
            #expect(r.error?.code == "reenrollment_window_passed")
        }
        // An older generation's key, after the device renewed: useless to whoever stole it.
        do {
            let f = try ControllerFixture()
            let (oldKey, first) = try f.enrolled("gw-roam", class: "roamer")
            f.clock.advance(3600)
            let renewed = try f.renew("gw-roam", key: try PrivateKey.generateP256())
            try #require(renewed.status == "issued")
            f.clock.advance(2 * 86400)
            let r = try f.reenroll("gw-roam", newKey: try PrivateKey.generateP256(), previousKey: oldKey,
                                   previousChain: try Certificate.chain(fromPEM: try #require(first.chain)))
            #expect(r.error?.code == "bad_reenrollment")
        }
        // A revoked device.
        do {
            let f = try ControllerFixture()
            let (key, chain) = try expiredRoamer(f)
            _ = try f.revocation.revoke(RevokeParams(id: "gw-roam", reason: "keyCompromise"), actor: "test")
            let r = try f.reenroll("gw-roam", newKey: try PrivateKey.generateP256(), previousKey: key, previousChain: chain)
            #expect(r.error?.code == "revoked")
        }
        // Signed by another key; a proof for another CSR; a proof signed long ago; a certificate from another CA.
        do {
            let f = try ControllerFixture()
            let (key, chain) = try expiredRoamer(f)
            let other = try PrivateKey.generateP256()
            #expect(try f.reenroll("gw-roam", newKey: other, previousKey: other, previousChain: chain).error?.code == "bad_reenrollment")
            let elsewhere = try CertificateSigningRequest.make(commonName: "gw-roam", key: try PrivateKey.generateP256()).pem
            #expect(try f.reenroll("gw-roam", newKey: other, previousKey: key, previousChain: chain, csrForProof: elsewhere).error?.code == "bad_reenrollment")
            #expect(try f.reenroll("gw-roam", newKey: other, previousKey: key, previousChain: chain,
                                   signedAt: f.clock.now.addingTimeInterval(-3600)).error?.code == "bad_reenrollment")
            let foreign = try ControllerFixture()
            let (foreignKey, foreignReply) = try foreign.enrolled("gw-roam", class: "roamer")
            let foreignChain = try Certificate.chain(fromPEM: try #require(foreignReply.chain))
            #expect(try f.reenroll("gw-roam", newKey: other, previousKey: foreignKey, previousChain: foreignChain).error?.code == "bad_reenrollment")
            // Nothing was issued by any of these.
            #expect(try f.sqlite("SELECT count(*) FROM certificates") == "1\n")
        }
    }

    @Test("a repeated re-enrollment request gets the same certificate, not a second one")
    func reenrollIdempotent() throws {
        let f = try ControllerFixture()
        let (oldKey, oldChain) = try expiredRoamer(f)
        let newKey = try PrivateKey.generateP256()
        let id = makeRequestID()
        let first = try f.reenroll("gw-roam", newKey: newKey, previousKey: oldKey, previousChain: oldChain, requestID: id)
        let second = try f.reenroll("gw-roam", newKey: newKey, previousKey: oldKey, previousChain: oldChain, requestID: id)
        #expect(first.status == "issued" && first.serial == second.serial)
        #expect(try f.sqlite("SELECT count(*) FROM certificates") == "2\n")
    }
}
