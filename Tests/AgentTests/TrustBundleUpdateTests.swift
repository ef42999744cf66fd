import Foundation
import Testing

@testable import Agent
import Shared

@Suite("bundle command: validation and union/replace")
struct TrustBundleUpdateTests {
    let pki: AgentTestPKI
    let other: AgentTestPKI
    let now = referenceTime.addingTimeInterval(60)

    init() throws {
        pki = try AgentTestPKI()
        other = try AgentTestPKI(trustDomain: "other.lanyard")
    }

    func deviceChain() throws -> [Certificate] { try pki.issueDevice("gw-1", key: PrivateKey.generateP256()) }

    @Test("by default the new anchors are added to the old ones, without duplicates")
    func union() throws {
        let pem = Certificate.pem(of: [other.root, pki.root])
        let result = try TrustBundleUpdate.apply(args: ["bundle": pem], current: pki.bundle, deviceChain: deviceChain(), now: now).get()
        #expect(result == [pki.root, pki.issuing, other.root])
        #expect(try TrustBundleUpdate.apply(args: ["bundle": pem, "replace": "false"], current: pki.bundle, deviceChain: nil, now: now).get() == result)
    }

    @Test("replace=true drops the old anchors, unless that would orphan this device's certificate")
    func replace() throws {
        let chain = try deviceChain()
        let kept = try TrustBundleUpdate.apply(args: ["bundle": Certificate.pem(of: [pki.root]), "replace": "true"],
                                               current: pki.bundle, deviceChain: chain, now: now).get()
        #expect(kept == [pki.root])
        let orphaning = TrustBundleUpdate.apply(args: ["bundle": other.root.pem, "replace": "true"], current: pki.bundle, deviceChain: chain, now: now)
        #expect(throws: TrustBundleUpdate.Refusal.self) { try orphaning.get() }
    }

    @Test("missing, unparsable, non-CA or oversized bundles and bad replace values are refused with bad_bundle")
    func refusals() throws {
        let leaf = try deviceChain()[0]
        let cases: [([String: String]?, String)] = [
            (nil, "missing"),
            (["bundle": ""], "missing"),
            (["bundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"], "parse"),
            (["bundle": "hello"], "parse"),
            (["bundle": Certificate.pem(of: [other.root, leaf])], "not a CA"),
            (["bundle": other.root.pem, "replace": "yes"], "replace"),
            (["bundle": String(repeating: other.root.pem, count: 17)], "more than 16"),
            (["bundle": String(repeating: "#", count: 70_000)], "larger"),
        ]
        for (args, word) in cases {
            switch TrustBundleUpdate.apply(args: args, current: pki.bundle, deviceChain: nil, now: now) {
            case .success: Issue.record("accepted \(String(describing: args?.keys.sorted()))")
            case .failure(let refusal):
                #expect(refusal.code == "bad_bundle")
                #expect(refusal.message.contains(word), "\(refusal.message)")
            }
        }
    }

    @Test("saved bundles are 0600 and load back")
    func persistence() throws {
        let dir = try TempDirectory()
        #expect(TrustBundleUpdate.load(stateDirectory: dir.path) == nil)
        try TrustBundleUpdate.save([pki.root, other.root], stateDirectory: dir.path)
        #expect(TrustBundleUpdate.load(stateDirectory: dir.path) == [pki.root, other.root])
        #expect(try posixMode(TrustBundleUpdate.path(in: dir.path)) == 0o600)
    }
}
