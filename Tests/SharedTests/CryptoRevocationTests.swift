import Foundation
import Testing

import Shared

@Suite("Crypto: CRLs and chain verification")
struct CryptoRevocationTests {
    @Test("our CRL lists the revoked serial for `openssl crl`; `openssl verify -crl_check` and ChainVerifier refuse that leaf and accept another", arguments: CryptoTestClock.allCases)
    func crlRevokesOneLeaf(clock: CryptoTestClock) throws {
        let now = clock.date
        let pki = try CryptoTestPKI(now: now)
        let (_, revokedLeaf) = try pki.issueDevice("gw-revoked")
        let (_, goodLeaf) = try pki.issueDevice("gw-good")
        let crl = try CertificateRevocationList.make(
            issuer: pki.issuing, issuerKey: pki.issuingKey, number: 7,
            thisUpdate: now.addingTimeInterval(-60), nextUpdate: now.addingTimeInterval(86_400),
            revoked: [RevokedCertificate(serialHex: revokedLeaf.serialHex, revokedAt: now.addingTimeInterval(-60), reason: .keyCompromise)])
        #expect(crl.revokedSerials == [revokedLeaf.serialHex])
        #expect(crl.number == 7)
        #expect(crl.nextUpdate == now.addingTimeInterval(86_400))
        #expect(crl.isIssued(by: pki.issuing))
        #expect(!crl.isIssued(by: pki.root))
        let reparsed = try CertificateRevocationList(pem: crl.pem)
        #expect(reparsed.revokedSerials == crl.revokedSerials && reparsed.number == 7)

        let dir = try CryptoTempDir()
        defer { dir.remove() }
        try pki.writeCAs(to: dir)
        try dir.write("crl.pem", crl.pem, mode: 0o644)
        try dir.write("revoked.pem", revokedLeaf.pem, mode: 0o644)
        try dir.write("good.pem", goodLeaf.pem, mode: 0o644)

        let text = try CryptoTools.openssl(["crl", "-in", "crl.pem", "-noout", "-text"], in: dir)
        #expect(text.status == 0)
        #expect(text.stdout.contains("Version 2 (0x1)"))
        // openssl prints whole bytes, so a serial like 0x0a… keeps its leading zero there.
        let evenHex = revokedLeaf.serialHex.count % 2 == 1 ? "0" + revokedLeaf.serialHex : revokedLeaf.serialHex
        #expect(text.stdout.lowercased().contains("serial number: \(evenHex)"))
        #expect(text.stdout.contains("Key Compromise"))
        #expect(text.stdout.contains("X509v3 CRL Number: \n                7"))
        #expect(text.stdout.contains("X509v3 Authority Key Identifier"))
        #expect(text.stdout.contains("ecdsa-with-SHA256"))
        let crlVerify = try CryptoTools.openssl(["crl", "-in", "crl.pem", "-noout", "-CAfile", "issuing.pem"], in: dir)
        #expect((crlVerify.stdout + crlVerify.stderr).contains("verify OK"))

        let attime = String(Int(now.timeIntervalSince1970))
        func opensslVerify(_ leaf: String) throws -> CryptoToolResult {
            try CryptoTools.openssl(
                ["verify", "-attime", attime, "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "root.pem",
                 "-untrusted", "issuing.pem", leaf], in: dir)
        }
        let refused = try opensslVerify("revoked.pem")
        #expect(refused.status != 0)
        #expect((refused.stdout + refused.stderr).contains("certificate revoked"))
        let accepted = try opensslVerify("good.pem")
        #expect(accepted.status == 0, "\(accepted.stdout) \(accepted.stderr)")

        let verifier = ChainVerifier(trustAnchors: [pki.root])
        let ours = verifier.verify(revokedLeaf, intermediates: [pki.issuing], at: now, crls: [crl])
        #expect(!ours.ok)
        #expect(ours.errorCode == 23)  // X509_V_ERR_CERT_REVOKED
        #expect(ours.reason == "certificate revoked")
        #expect(verifier.verify(goodLeaf, intermediates: [pki.issuing], at: now, crls: [crl]).ok)
        // Without CRLs the revoked leaf is otherwise valid.
        #expect(verifier.verify(revokedLeaf, intermediates: [pki.issuing], at: now).ok)
    }

    @Test("an empty CRL with every reason round-trips; reason names map both ways")
    func reasonsAndEmptyCRL() throws {
        let now = Date()
        let pki = try CryptoTestPKI(now: now)
        let entries = RevocationReason.allCases.enumerated().map { index, reason in
            RevokedCertificate(serialHex: String(index + 1, radix: 16) + "ab", revokedAt: now, reason: reason)
        }
        let crl = try CertificateRevocationList.make(
            issuer: pki.issuing, issuerKey: pki.issuingKey, number: UInt64.max, thisUpdate: now,
            nextUpdate: now.addingTimeInterval(3_600), revoked: entries)
        #expect(Set(crl.revokedSerials) == Set(entries.map(\.serialHex)))
        #expect(crl.number == UInt64.max)
        let empty = try CertificateRevocationList.make(
            issuer: pki.issuing, issuerKey: pki.issuingKey, number: 1, thisUpdate: now,
            nextUpdate: now.addingTimeInterval(3_600), revoked: [])
        #expect(empty.revokedSerials.isEmpty)
        for reason in RevocationReason.allCases { #expect(RevocationReason(name: reason.name) == reason) }
        #expect(RevocationReason(name: "removeFromCRL") == nil)
        #expect(throws: CryptoError.self) {
            try CertificateRevocationList.make(
                issuer: pki.issuing, issuerKey: pki.rootKey, number: 1, thisUpdate: now,
                nextUpdate: now.addingTimeInterval(3_600), revoked: [])
        }
    }

    @Test("ChainVerifier refuses a leaf from another CA, an expired or not-yet-valid leaf, and enforces requiredEKU", arguments: CryptoTestClock.allCases)
    func verifierRefusals(clock: CryptoTestClock) throws {
        let now = clock.date
        let pki = try CryptoTestPKI(now: now)
        let other = try CryptoTestPKI(now: now, rootName: "Other Root")
        let (_, leaf) = try pki.issueDevice("gw-17")
        let (_, foreign) = try other.issueDevice("gw-17")
        let verifier = ChainVerifier(trustAnchors: [pki.root])

        #expect(verifier.verify(leaf, intermediates: [pki.issuing], at: now).ok)
        let foreignResult = verifier.verify(foreign, intermediates: [other.issuing], at: now)
        #expect(!foreignResult.ok)
        #expect(foreignResult.errorCode == 2 || foreignResult.errorCode == 20)  // unable to get issuer cert (locally)
        // Mixing in our intermediate does not help a foreign leaf.
        #expect(!verifier.verify(foreign, intermediates: [pki.issuing, other.issuing], at: now).ok)
        // Missing intermediate: no path.
        #expect(!verifier.verify(leaf, at: now).ok)

        let expired = verifier.verify(leaf, intermediates: [pki.issuing], at: leaf.notAfter.addingTimeInterval(1))
        #expect(!expired.ok)
        #expect(expired.errorCode == 10)  // X509_V_ERR_CERT_HAS_EXPIRED
        #expect(expired.reason == "certificate has expired")
        let early = verifier.verify(leaf, intermediates: [pki.issuing], at: leaf.notBefore.addingTimeInterval(-1))
        #expect(!early.ok)
        #expect(early.errorCode == 9)  // X509_V_ERR_CERT_NOT_YET_VALID

        #expect(verifier.verify(leaf, intermediates: [pki.issuing], at: now, requiredEKU: ExtendedKeyUsage.clientAuth).ok)
        let noEKU = verifier.verify(leaf, intermediates: [pki.issuing], at: now, requiredEKU: ExtendedKeyUsage.lanyardCommandSigning)
        #expect(!noEKU.ok)
        #expect(noEKU.errorCode == 26)  // X509_V_ERR_INVALID_PURPOSE
        #expect(!verifier.verify(leaf, intermediates: [pki.issuing], at: now, requiredEKU: ExtendedKeyUsage.serverAuth).ok)

        // Partial chain: the issuing CA alone can be the anchor.
        #expect(ChainVerifier(trustAnchors: [pki.issuing]).verify(leaf, at: now).ok)
        // A CA certificate that the leaf merely names is not enough: the signature must match.
        #expect(!ChainVerifier(trustAnchors: [other.issuing]).verify(leaf, at: now).ok)
        #expect(!ChainVerifier(trustAnchors: []).verify(leaf, at: now).ok)
    }

    @Test("a CRL check without a CRL for the leaf's issuer fails closed")
    func crlCheckWithoutMatchingCRL() throws {
        let now = Date()
        let pki = try CryptoTestPKI(now: now)
        let other = try CryptoTestPKI(now: now, rootName: "Other Root")
        let (_, leaf) = try pki.issueDevice("gw-17")
        let unrelated = try CertificateRevocationList.make(
            issuer: other.issuing, issuerKey: other.issuingKey, number: 1, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(3_600), revoked: [])
        let result = ChainVerifier(trustAnchors: [pki.root]).verify(leaf, intermediates: [pki.issuing], at: now, crls: [unrelated])
        #expect(!result.ok)
        #expect(result.errorCode == 3)  // X509_V_ERR_UNABLE_TO_GET_CRL
    }
}
