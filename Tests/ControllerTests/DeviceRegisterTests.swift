import Foundation
import Testing

@testable import Controller
import Shared

@Suite("Device register: adding and approving devices")
struct DeviceRegisterTests {
    @Test("a well-formed device is added as registered with its owners, nothing missing")
    func addHappyPath() throws {
        let f = try ControllerFixture()
        let view = try f.add("gw-17.plant-a")
        #expect(view.id == "gw-17.plant-a")
        #expect(view.state == "registered")
        #expect(view.deviceClass == "sensor")
        #expect(view.owners == allOwners)
        #expect(view.missingOwners.isEmpty)
        #expect(view.createdAt == Int64(referenceTime.timeIntervalSince1970))
        #expect(try f.sqlite("SELECT state FROM devices WHERE id = 'gw-17.plant-a'") == "registered\n")
    }

    @Test("malformed device ids are refused with bad_request", arguments: [
        "", "Gw-1", "-gw", ".gw", "gw/1", "gw+1", "gw#1", "gw_1", "gw 1", "gé", String(repeating: "a", count: 64),
    ])
    func addMalformedID(_ id: String) throws {
        let f = try ControllerFixture()
        #expect(wireCode { try f.add(id) } == "bad_request")
        #expect(try f.sqlite("SELECT count(*) FROM devices") == "0\n")
    }

    @Test("the longest allowed id (63 characters) is accepted")
    func addLongestID() throws {
        let f = try ControllerFixture()
        let id = String(repeating: "a", count: 63)
        #expect(try f.add(id).id == id)
    }

    @Test("ids starting with lanyard- are reserved for services")
    func addReservedPrefix() throws {
        let f = try ControllerFixture()
        #expect(wireCode { try f.add("lanyard-controller") } == "bad_request")
        #expect(wireCode { try f.add("lanyard-x") } == "bad_request")
        // Only the prefix is reserved.
        #expect(try f.add("my-lanyard-1").state == "registered")
    }

    @Test("an unknown device class is refused with bad_request")
    func addUnknownClass() throws {
        let f = try ControllerFixture()
        #expect(wireCode { try f.add("gw-1", class: "nonexistent") } == "bad_request")
        #expect(wireCode { try f.show("gw-1") } == "not_found")
    }

    @Test("an unknown owner role is refused with bad_request and nothing is stored")
    func addUnknownRole() throws {
        let f = try ControllerFixture()
        var owners = allOwners
        owners["janitor"] = "bob"
        #expect(wireCode { try f.add("gw-1", owners: owners) } == "bad_request")
        #expect(try f.sqlite("SELECT count(*) FROM owners") == "0\n")
    }

    @Test("an empty or multi-line owner name is refused")
    func addBadOwnerName() throws {
        let f = try ControllerFixture()
        #expect(wireCode { try f.add("gw-1", owners: ["ops": "   "]) } == "bad_request")
        #expect(wireCode { try f.add("gw-2", owners: ["ops": "a\nb"]) } == "bad_request")
    }

    @Test("adding the same id twice answers already_exists and keeps the first record")
    func addDuplicate() throws {
        let f = try ControllerFixture()
        try f.add("gw-1", class: "sensor")
        #expect(wireCode { try f.add("gw-1", class: "lite", owners: ["ops": "x", "business": "y"]) } == "already_exists")
        #expect(try f.register.show("gw-1").deviceClass == "sensor")
        #expect(try f.sqlite("SELECT count(*) FROM devices") == "1\n")
    }

    @Test("approval is refused with owners_missing while a required owner is missing, and allowed once assigned")
    func approveOwnersMissing() throws {
        let f = try ControllerFixture()
        var owners = allOwners
        owners["business"] = nil
        let view = try f.add("gw-1", owners: owners)
        #expect(view.missingOwners == ["business"])
        #expect(wireCode { _ = try f.approve("gw-1") } == "owners_missing")
        #expect(try f.register.show("gw-1").state == "registered")
        #expect(try f.sqlite("SELECT count(*) FROM enrollment_tokens") == "0\n")

        // A class that requires fewer owners is approvable with fewer owners.
        try f.add("gw-2", class: "lite", owners: ["ops": "ot-ops", "business": "plant"])
        #expect(try f.approve("gw-2").token.hasPrefix("lyt_"))
    }

    @Test("approval returns a lyt_ token; the database holds only its SHA-256, never the token")
    func approveStoresOnlyHash() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let approval = try f.approve("gw-1")
        #expect(approval.token.hasPrefix("lyt_"))
        #expect(approval.token.count >= 4 + 43)  // 32 random bytes, base64url
        #expect(approval.expiresAt == Int64(referenceTime.timeIntervalSince1970) + 3600)  // token_ttl = 1h
        #expect(try f.register.show("gw-1").state == "approved")

        // SHA-256 computed by an independent tool.
        let digest = try f.openssl(["dgst", "-sha256", "-r", try f.write("token.txt", approval.token)])
        try #require(digest.succeeded, "\(digest.stderr)")
        let expected = String(digest.stdout.prefix(64))
        try? FileManager.default.removeItem(atPath: f.path("token.txt"))
        #expect(try f.sqlite("SELECT token_hash FROM enrollment_tokens WHERE device_id = 'gw-1'") == expected + "\n")

        // The token's text is nowhere in the database files (main file and WAL).
        for file in [f.databasePath, f.databasePath + "-wal"] where FileManager.default.fileExists(atPath: file) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(bytes.range(of: Data(approval.token.utf8)) == nil, "token text found in \(file)")
            #expect(bytes.range(of: Data(approval.token.dropFirst(4).utf8)) == nil, "token body found in \(file)")
        }
    }

    @Test("approving again replaces the unused token: the old one stops working")
    func reapproveReplacesToken() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        let first = try f.approve("gw-1")
        let second = try f.approve("gw-1")
        #expect(first.token != second.token)
        #expect(try f.sqlite("SELECT count(*) FROM enrollment_tokens WHERE device_id = 'gw-1'") == "1\n")
        #expect(try f.sqlite("SELECT token_hash FROM enrollment_tokens") == DeviceRegister.hashToken(second.token) + "\n")
        let key = try PrivateKey.generateP256()
        #expect(try f.enroll("gw-1", key: key, token: first.token).errorCode == "bad_token")
        #expect(try f.enroll("gw-1", key: key, token: second.token).status == "issued")
    }

    @Test("approval of an unknown device answers not_found; of an active device invalid_transition")
    func approveWrongStates() throws {
        let f = try ControllerFixture()
        #expect(wireCode { _ = try f.approve("ghost") } == "not_found")
        _ = try f.enrolled("gw-1")
        #expect(wireCode { _ = try f.approve("gw-1") } == "invalid_transition")
        // A revoked device cannot be approved again (no new token for it).
        try f.add("gw-2")
        _ = try f.approve("gw-2")
        _ = try f.revocation.revoke(RevokeParams(id: "gw-2", reason: "superseded"), actor: "test")
        #expect(wireCode { _ = try f.approve("gw-2") } == "invalid_transition")
    }

    @Test("token lifetimes outside 60 s ... 30 days are refused")
    func approveTokenTTLBounds() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        #expect(wireCode { _ = try f.approve("gw-1", tokenTTL: 59) } == "bad_request")
        #expect(wireCode { _ = try f.approve("gw-1", tokenTTL: 30 * 86400 + 1) } == "bad_request")
        #expect(try f.approve("gw-1", tokenTTL: 60).expiresAt == Int64(referenceTime.timeIntervalSince1970) + 60)
    }

    @Test("every register change leaves an audit record")
    func auditTrail() throws {
        let f = try ControllerFixture()
        try f.add("gw-1")
        _ = try f.approve("gw-1")
        #expect(try f.sqlite("SELECT action || ':' || target || ':' || outcome FROM audit WHERE target = 'gw-1' ORDER BY seq")
                == "device.add:gw-1:ok\ndevice.approve:gw-1:ok\n")
    }
}

extension ControllerFixture {
    func show(_ id: String) throws { _ = try register.show(id) }
}
