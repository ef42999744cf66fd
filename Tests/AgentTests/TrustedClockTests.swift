import Foundation
import Testing

@testable import Agent
import Shared

@Suite("TrustedClock: a wrong device clock neither discards a good credential nor stops renewal")
struct TrustedClockTests {
    @Test("now is the latest of the system clock, the last saved state and the release floor")
    func latestOfThree() {
        let system1970 = Date(timeIntervalSince1970: 0)
        #expect(TrustedClock.now(system: system1970, lastPersisted: nil).now == TrustedClock.minimumPlausibleDate)
        let saved = TrustedClock.minimumPlausibleDate.addingTimeInterval(86400 * 30)
        let fromState = TrustedClock.now(system: system1970, lastPersisted: Int64(saved.timeIntervalSince1970))
        #expect(fromState.now == saved && fromState.correction == saved.timeIntervalSince1970)
        let fine = saved.addingTimeInterval(10)
        #expect(TrustedClock.now(system: fine, lastPersisted: Int64(saved.timeIntervalSince1970)) == (fine, 0))
    }

    @Test("skew is device minus controller; a wall-clock step is told from timer drift")
    func skewAndJump() {
        #expect(TrustedClock.skew(receivedAt: 1_000_300, issuedAt: 1_000_000) == 300)
        #expect(TrustedClock.jump(wallElapsed: 300.5, monotonicElapsed: 300) == nil)
        #expect(TrustedClock.jump(wallElapsed: 86700, monotonicElapsed: 300) == 86400)
        #expect(TrustedClock.jump(wallElapsed: -3300, monotonicElapsed: 300) == -3600)
    }

    @Test("recovery keeps a generation whose notBefore is less than the backdate ahead of the device clock, not more")
    func recoveryToleratesSmallLag() throws {
        let pki = try AgentTestPKI()
        let dir = try TempDirectory()
        let store = try CredentialStore(directory: dir.path + "/state", deviceID: DeviceID("gw-1")!)
        let key = try PrivateKey.generateP256()
        let chain = try pki.issueDevice("gw-1", key: key)  // notBefore = referenceTime - 300
        let at = Int64(referenceTime.timeIntervalSince1970)
        try store.install(key: key, chain: chain, metadata: GenerationMetadata(issuedAt: at, renewAt: 0.66, receivedAt: at))
        let notBefore = referenceTime.addingTimeInterval(-300)
        #expect(store.recover(trust: pki.bundle, now: notBefore.addingTimeInterval(-200)).credential != nil)
        #expect(store.recover(trust: pki.bundle, now: notBefore.addingTimeInterval(-400)).credential == nil)
    }
}
