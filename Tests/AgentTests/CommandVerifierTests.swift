import Foundation
import Testing

@testable import Agent
import Shared
import TestSupport

@Suite("CommandVerifier as the agent uses it: who signed, for whom, when, in which order")
struct CommandVerifierTests {
    let pki: AgentTestPKI
    let device = DeviceID("gw-1")!
    var now: Date { referenceTime.addingTimeInterval(120) }
    var t: Int64 { Int64(now.timeIntervalSince1970) }

    init() throws { pki = try AgentTestPKI() }

    var verifier: CommandVerifier { CommandVerifier(trustAnchors: pki.bundle, trustDomain: testTrustDomain, device: device) }

    func claims(sub: String = "gw-1", seq: Int64 = 5, iat: Int64? = nil, exp: Int64? = nil, cmd: String = "ping",
                args: [String: String]? = nil) -> CommandClaims {
        CommandClaims(iss: "spiffe://test.lanyard/lanyard/controller", sub: sub, jti: "jti-0001", seq: seq, iat: iat ?? t,
                      exp: exp ?? t + 3600, cmd: cmd, args: args)
    }

    func code(_ compact: String, lastSeq: Int64 = 0, at: Date? = nil) -> String? {
        switch verifier.verify(compact, now: at ?? now, lastSeq: lastSeq) {
        case .success: return nil
        case .failure(let refusal): return refusal.code
        }
    }

    func b64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    func unb64url(_ text: String) throws -> [UInt8] {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Array(try unwrapped(Data(base64Encoded: s), "base64url \(text)"))
    }

    @Test("a command signed by the command signer is accepted with its claims")
    func accepts() throws {
        let c = claims(cmd: "rotate", args: ["campaign": "c-1"])
        let compact = try pki.commandSigner.sign(c)
        guard case .success(let accepted) = verifier.verify(compact, now: now, lastSeq: 4) else {
            Issue.record("refused: \(String(describing: code(compact, lastSeq: 4)))")
            return
        }
        #expect(accepted == c)
    }

    @Test("the command signer made by `lanyard-controller init` (pki/command-signer.key/.pem) is accepted")
    func acceptsInitPKI() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let tool = exe.appendingPathComponent("lanyard-controller").path
        try #require(FileManager.default.isExecutableFile(atPath: tool), "build the products first: \(tool) is missing")
        let dir = try TempDirectory()
        let result = try TestProcess.run(tool, ["init", "--dir", dir.path + "/c", "--trust-domain", testTrustDomain])
        try #require(result.succeeded, "\(result.stderr)")
        let pkiDir = dir.path + "/c/pki"
        let key = try PrivateKey(pem: String(contentsOfFile: pkiDir + "/command-signer.key", encoding: .utf8))
        let chain = try Certificate.chain(fromPEM: String(contentsOfFile: pkiDir + "/command-signer.pem", encoding: .utf8))
        let bundle = try Certificate.chain(fromPEM: String(contentsOfFile: pkiDir + "/bundle.pem", encoding: .utf8))
        let now = Date()
        let c = CommandClaims(iss: "x", sub: "gw-1", jti: "j-1", seq: 1, iat: Int64(now.timeIntervalSince1970),
                              exp: Int64(now.timeIntervalSince1970) + 60, cmd: "ping")
        let compact = try CommandSigner(key: key, chain: chain).sign(c)
        let v = CommandVerifier(trustAnchors: bundle, trustDomain: testTrustDomain, device: device)
        guard case .success(let accepted) = v.verify(compact, now: now, lastSeq: 0) else {
            Issue.record("refused a command signed with the init PKI's command signer")
            return
        }
        #expect(accepted == c)
        // The controller's own MQTT client certificate is not a command signer.
        let controllerKey = try PrivateKey(pem: String(contentsOfFile: pkiDir + "/controller.key", encoding: .utf8))
        let controllerChain = try Certificate.chain(fromPEM: String(contentsOfFile: pkiDir + "/controller.pem", encoding: .utf8))
        let forged = try CommandSigner(key: controllerKey, chain: controllerChain).sign(c)
        if case .success = v.verify(forged, now: now, lastSeq: 0) { Issue.record("accepted a command signed by the controller's TLS key") }
    }

    @Test("a command signed by a device key with a valid device certificate is refused: untrusted_signer")
    func deviceSigner() throws {
        let key = try PrivateKey.generateP256()
        let chain = try pki.issueDevice("gw-2", key: key)
        let compact = try CommandSigner(key: key, chain: chain).sign(claims())
        #expect(code(compact) == "untrusted_signer")
        // Even the target device's own certificate does not make it a signer.
        let own = try PrivateKey.generateP256()
        #expect(code(try CommandSigner(key: own, chain: try pki.issueDevice("gw-1", key: own)).sign(claims())) == "untrusted_signer")
    }

    @Test("a device certificate carrying the command signer's SPIFFE id but not its EKU is refused")
    func signerURIWithoutEKU() throws {
        let key = try PrivateKey.generateP256()
        let chain = try pki.issueDevice("gw-2", key: key, uri: ServiceIdentity.commandSignerURI(trustDomain: testTrustDomain))
        #expect(code(try CommandSigner(key: key, chain: chain).sign(claims())) == "untrusted_signer")
    }

    @Test("a command signer from another CA is refused: untrusted_signer")
    func foreignSigner() throws {
        let rogue = try AgentTestPKI()
        #expect(code(try rogue.commandSigner.sign(claims())) == "untrusted_signer")
    }

    @Test("a command signer of another trust domain is refused: untrusted_signer")
    func otherTrustDomain() throws {
        let v = CommandVerifier(trustAnchors: pki.bundle, trustDomain: "other.lanyard", device: device)
        guard case .failure(let refusal) = v.verify(try pki.commandSigner.sign(claims()), now: now, lastSeq: 0) else {
            Issue.record("accepted a signer for another trust domain")
            return
        }
        #expect(refusal.code == "untrusted_signer")
    }

    @Test("a command for another device is refused: wrong_subject, with its jti for the ack")
    func wrongSubject() throws {
        guard case .failure(let refusal) = verifier.verify(try pki.commandSigner.sign(claims(sub: "gw-2")), now: now, lastSeq: 0) else {
            Issue.record("accepted a command for gw-2")
            return
        }
        #expect(refusal.code == "wrong_subject")
        #expect(refusal.jti == "jti-0001")
    }

    @Test("an expired command is refused: expired")
    func expired() throws {
        #expect(code(try pki.commandSigner.sign(claims(iat: t - 7200, exp: t - 1))) == "expired")
        #expect(code(try pki.commandSigner.sign(claims(iat: t - 7200, exp: t))) == "expired")
        // Valid now, expired once the clock has moved past exp.
        let compact = try pki.commandSigner.sign(claims(exp: t + 10))
        #expect(code(compact) == nil)
        #expect(code(compact, at: now.addingTimeInterval(10)) == "expired")
    }

    @Test("a command issued in the future beyond the allowed skew is refused: not_yet_valid")
    func future() throws {
        #expect(code(try pki.commandSigner.sign(claims(iat: t + 301, exp: t + 4000))) == "not_yet_valid")
        #expect(code(try pki.commandSigner.sign(claims(iat: t + 300, exp: t + 4000))) == nil)
    }

    @Test("a seq not above the last accepted one is refused: replayed")
    func replayed() throws {
        let compact = try pki.commandSigner.sign(claims(seq: 5))
        #expect(code(compact, lastSeq: 4) == nil)
        #expect(code(compact, lastSeq: 5) == "replayed")
        #expect(code(compact, lastSeq: 9) == "replayed")
    }

    @Test("a tampered payload is refused: bad_signature")
    func tampered() throws {
        let compact = try pki.commandSigner.sign(claims(cmd: "ping"))
        let parts = compact.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let evil = claims(cmd: "revoke", args: ["reason": "keyCompromise"])
        let forged = [parts[0], b64url(WireCodec.encode(evil)), parts[2]].joined(separator: ".")
        #expect(code(forged) == "bad_signature")
        // A flipped bit in the signature too.
        var sig = try unb64url(parts[2])
        sig[10] ^= 1
        #expect(code([parts[0], parts[1], b64url(sig)].joined(separator: ".")) == "bad_signature")
    }

    @Test("an oversized command (> 16 KiB), even when properly signed, is refused: malformed")
    func oversized() throws {
        let big = try pki.commandSigner.sign(claims(args: ["pad": String(repeating: "x", count: 13_000)]))
        try #require(big.utf8.count > 16384)
        #expect(code(big) == "malformed")
        // Just under the limit is fine.
        let fits = try pki.commandSigner.sign(claims(args: ["pad": String(repeating: "x", count: 6_000)]))
        try #require(fits.utf8.count < 16384)
        #expect(code(fits) == nil)
    }

    @Test("garbage is refused: malformed", arguments: ["", "garbage", "a.b", "a.b.c.d", "...", "!!.??.##", "eyJhbGciOiJFUzI1NiJ9..c2ln"])
    func garbage(_ text: String) {
        #expect(code(text) == "malformed")
    }

    @Test("alg none is refused, signed or not")
    func algNone() throws {
        let signed = try pki.commandSigner.sign(claims())
        let parts = signed.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let headerJSON = try JSONDecoder().decode(CommandHeader.self, from: Data(try unb64url(parts[0])))
        var none = headerJSON
        none.alg = "none"
        let header = b64url(WireCodec.encode(none))
        // Unsecured JWS (empty signature).
        #expect(code(header + "." + parts[1] + ".") == "malformed")
        // alg none with a signature part present.
        #expect(code(header + "." + parts[1] + "." + parts[2]) == "bad_algorithm")
        // HS256 with the signer's public key as the secret (algorithm confusion).
        var hs = headerJSON
        hs.alg = "HS256"
        #expect(code(b64url(WireCodec.encode(hs)) + "." + parts[1] + "." + parts[2]) == "bad_algorithm")
    }

    @Test("an unknown command is refused: unknown_command")
    func unknownCommand() throws {
        #expect(code(try pki.commandSigner.sign(claims(cmd: "format-disk"))) == "unknown_command")
    }

    @Test("the agent derives the trust domain from its own certificate's SPIFFE id")
    func trustDomainFromURI() {
        #expect(AgentRunner.trustDomain(ofDeviceURI: "spiffe://test.lanyard/device/gw-1") == "test.lanyard")
        #expect(AgentRunner.trustDomain(ofDeviceURI: "spiffe://test.lanyard/lanyard/commands") == nil)
        #expect(AgentRunner.trustDomain(ofDeviceURI: "https://test.lanyard/device/gw-1") == nil)
    }
}
