import Foundation
import Testing

@testable import Controller
import Shared
import TestSupport

@Suite("Schema v3 migration keeps a v2 register and its audit chain")
struct SchemaMigrationTests {
    /// The v2 schema as the previous release created it (v1 tables plus the chained audit columns).
    static let v2Schema = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE devices (id TEXT PRIMARY KEY, class TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('registered', 'approved', 'active', 'revoked')),
        created_at INTEGER NOT NULL, approved_at INTEGER, revoked_at INTEGER, revocation_reason TEXT, last_seen INTEGER, reported_state TEXT,
        command_seq INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE owners (device_id TEXT NOT NULL REFERENCES devices(id), role TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (device_id, role));
    CREATE TABLE enrollment_tokens (token_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id), created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, used_at INTEGER);
    CREATE TABLE certificates (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id), kind TEXT NOT NULL CHECK (kind IN ('enroll', 'renew')),
        request_id TEXT NOT NULL, key_fingerprint TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL,
        chain_pem TEXT NOT NULL, revoked_at INTEGER, revocation_reason INTEGER);
    CREATE TABLE commands (jti TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id), seq INTEGER NOT NULL, cmd TEXT NOT NULL,
        sent_at INTEGER NOT NULL, outcome TEXT, outcome_code TEXT, acked_at INTEGER);
    CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
        outcome TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL DEFAULT '', hash TEXT NOT NULL DEFAULT '');
    """

    @Test("devices, owners, certificates and the audit chain survive; the new states and tables work afterwards")
    func migrateV2() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-mig-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/lanyard.db"
        let h1 = AuditChain.hash(seq: 1, time: 100, actor: "uid:0(root)", action: "device.add", target: "gw-1", outcome: "ok", detail: "class=default",
                                 prevHash: AuditChain.genesis)
        let h2 = AuditChain.hash(seq: 2, time: 101, actor: "device:gw-1", action: "enroll", target: "gw-1", outcome: "ok", detail: "serial=ab",
                                 prevHash: h1)
        let sql = Self.v2Schema + """
        INSERT INTO devices(id, class, state, created_at, last_seen, command_seq) VALUES ('gw-1', 'default', 'active', 100, 150, 3);
        INSERT INTO owners VALUES ('gw-1', 'ops', 'ot-ops'), ('gw-1', 'business', 'plant');
        INSERT INTO certificates(serial, device_id, kind, request_id, key_fingerprint, not_before, not_after, issued_at, chain_pem)
            VALUES ('ab', 'gw-1', 'enroll', 'req-00000001', 'fp', 90, 999999, 101, 'pem');
        INSERT INTO audit VALUES (1, 100, 'uid:0(root)', 'device.add', 'gw-1', 'ok', 'class=default', '\(AuditChain.genesis)', '\(h1)');
        INSERT INTO audit VALUES (2, 101, 'device:gw-1', 'enroll', 'gw-1', 'ok', 'serial=ab', '\(h1)', '\(h2)');
        INSERT INTO meta VALUES ('audit_head', '2:\(h2)');
        PRAGMA user_version = 2;
        """
        let created = try TestProcess.run("/usr/bin/sqlite3", [db], stdin: sql)
        try #require(created.succeeded, "\(created.stderr)")

        let store = try Store(path: db)
        let register = try DeviceRegister(store: store, classes: ["default": DeviceClassPolicy(
            name: "default", ttl: .seconds(3600), maxTTL: .seconds(86400), renewAt: 0.66, requiredOwners: [.ops, .business], keyAlgorithms: ["P-256"],
            rotateKeys: true)], clock: { Date(timeIntervalSince1970: 200) })
        let version = try TestProcess.run("/usr/bin/sqlite3", [db, "PRAGMA user_version"])
        #expect(version.stdout == "3\n")
        let gw = try register.show("gw-1")
        #expect(gw.state == "active")
        #expect(gw.owners == ["ops": "ot-ops", "business": "plant"])
        #expect(gw.lastSeen == 150)
        #expect(gw.serial == "ab")
        #expect(gw.attributes?.bootstrapMethod == "token")
        // The chain verifies across the migration and keeps growing from its head.
        let verification = try store.withConnection { try AuditChain.verify($0) }
        #expect(verification.ok, "\(verification)")
        #expect(verification.entries == 3)  // + the class seeded from the configuration
        #expect(try store.withConnection { try AuditChain.entries($0) }.prefix(2).map(\.hash) == [h1, h2])
        // The rebuilt table accepts the new states and keeps its foreign keys.
        let suspended = try register.transition(DeviceTransitionParams(id: "gw-1", event: "suspend"), actor: "test")
        #expect(suspended.state == "suspended")
        let fk = try TestProcess.run("/usr/bin/sqlite3", [db, "PRAGMA foreign_key_check"])
        #expect(fk.stdout.isEmpty)
        // Opening again does nothing more.
        _ = try Store(path: db)
        #expect(try TestProcess.run("/usr/bin/sqlite3", [db, "SELECT count(*) FROM class_policies"]).stdout == "1\n")
    }
}
