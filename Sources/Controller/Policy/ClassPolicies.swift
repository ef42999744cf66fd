import Foundation
import Shared

/// Device class policies, versioned in the register. The configuration's
/// `[class.NAME]` sections seed classes the register does not have yet; from
/// then on the register is the source of truth and `class.set` (identity
/// role) records a new version with an audit entry. Issuance reads the
/// current version and stamps it on every certificate.
///
/// The current versions are cached: every change goes through this object,
/// and reading a JSON row for each device of a 100 000-device list would cost
/// more than the list.
package final class ClassPolicies: @unchecked Sendable {
    // `cache` is only touched while `lock` is held.
    private let lock = NSLock()
    private var cache: [String: (policy: DeviceClassPolicy, version: Int)] = [:]
    private let store: Store

    package static let bootstrapMethods = ["token", "idevid"]
    package static let keyAlgorithms = ["P-256", "P-384", "Ed25519", "RSA-<bits>"]

    /// A name `KeyAlgorithm.name` produces: P-256, P-384, Ed25519 or RSA-<bits ≥ 2048>.
    static func isKnownKeyAlgorithm(_ name: String) -> Bool {
        if ["P-256", "P-384", "Ed25519"].contains(name) { return true }
        guard name.hasPrefix("RSA-"), let bits = Int(name.dropFirst(4)) else { return false }
        return bits >= 2048 && bits <= 16384
    }

    /// Loads the current versions, seeding classes the register lacks from `seed`
    /// (`drift(from:)` then tells which configured classes differ from the register's).
    package init(store: Store, seed: [String: DeviceClassPolicy], clock: @Sendable () -> Date) throws {
        self.store = store
        let now = clock()
        try store.transaction { db in
            for (name, policy) in seed.sorted(by: { $0.key < $1.key }) {
                guard try ClassPolicies.latest(db, name) == nil else { continue }
                try ClassPolicies.record(db, policy, version: 1, time: now, actor: "config", reason: "seeded from the controller configuration")
            }
        }
        try reload()
    }

    /// Classes whose configured policy differs from the register's current version.
    package func drift(from configured: [String: DeviceClassPolicy]) -> [String] {
        lock.withLock { configured.filter { cache[$0.key].map { $0.policy } != $0.value }.keys.sorted() }
    }

    package var all: [String: DeviceClassPolicy] { lock.withLock { cache.mapValues(\.policy) } }

    package func current(_ name: String) -> (policy: DeviceClassPolicy, version: Int)? { lock.withLock { cache[name] } }

    package func list() -> [ClassPolicyView] {
        let entries = lock.withLock { cache }
        let meta = (try? store.withConnection { db in
            try db.query("SELECT name, version, recorded_at, recorded_by FROM class_policies c WHERE version = (SELECT max(version) FROM class_policies WHERE name = c.name)")
        }) ?? []
        return entries.keys.sorted().map { name in
            var view = ClassPolicies.view(entries[name]!.policy)
            view.version = entries[name]!.version
            if let row = meta.first(where: { $0[0].text == name }) {
                view.recordedAt = row[2].int
                view.recordedBy = row[3].text
            }
            return view
        }
    }

    /// Records a new version (or the first one of a new class); unchanged policies are refused.
    package func set(_ params: ClassSetParams, actor: String, now: Date) throws -> ClassPolicyView {
        let policy = try ClassPolicies.validate(params.policy)
        let version = try store.transaction { db -> Int in
            let latest = try ClassPolicies.latest(db, policy.name)
            if let latest, latest.policy == policy {
                throw WireError(.badRequest, "class \(policy.name) already has this policy (version \(latest.version))")
            }
            let version = (latest?.version ?? 0) + 1
            try ClassPolicies.record(db, policy, version: version, time: now, actor: actor,
                                     reason: params.reason.map { String($0.prefix(256)) } ?? "", before: latest?.policy)
            return version
        }
        try reload()
        var view = ClassPolicies.view(policy)
        view.version = version
        view.recordedAt = Int64(now.timeIntervalSince1970)
        view.recordedBy = actor
        return view
    }

    private func reload() throws {
        let loaded = try store.withConnection { db -> [String: (DeviceClassPolicy, Int)] in
            var result: [String: (DeviceClassPolicy, Int)] = [:]
            for row in try db.query("SELECT DISTINCT name FROM class_policies") {
                if let name = row[0].text, let latest = try ClassPolicies.latest(db, name) { result[name] = (latest.policy, latest.version) }
            }
            return result
        }
        lock.withLock { cache = loaded.mapValues { (policy: $0.0, version: $0.1) } }
    }

    private static func latest(_ db: SQLiteConnection, _ name: String) throws -> (policy: DeviceClassPolicy, version: Int)? {
        guard let row = try db.query("SELECT version, policy FROM class_policies WHERE name = ? ORDER BY version DESC LIMIT 1", [.text(name)]).first,
              let text = row[1].text else { return nil }
        let view = try WireCodec.decode(ClassPolicyView.self, from: Array(text.utf8))
        return (try policy(from: view), Int(row[0].int ?? 0))
    }

    private static func record(_ db: SQLiteConnection, _ policy: DeviceClassPolicy, version: Int, time: Date, actor: String, reason: String,
                               before: DeviceClassPolicy? = nil) throws {
        let json = String(decoding: WireCodec.encode(view(policy)), as: UTF8.self)
        try db.query("INSERT INTO class_policies(name, version, policy, recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?)",
                     [.text(policy.name), .int(Int64(version)), .text(json), .int(Int64(time.timeIntervalSince1970)), .text(actor)])
        let beforeJSON = before.map { String(decoding: WireCodec.encode(view($0)), as: UTF8.self) } ?? "-"
        try db.audit(time: time, actor: actor, action: "class.set", target: policy.name, outcome: "ok",
                     detail: "version=\(version) reason=\(reason) before=\(beforeJSON) after=\(json)")
    }

    // MARK: conversion and validation

    package static func view(_ p: DeviceClassPolicy) -> ClassPolicyView {
        ClassPolicyView(name: p.name, ttl: p.ttl.seconds, maxTTL: p.maxTTL.seconds, renewAt: p.renewAt, requiredOwners: p.requiredOwners.map(\.rawValue),
                        keyAlgorithms: p.keyAlgorithms, rotateKeys: p.rotateKeys, bootstrapMethods: p.bootstrapMethods,
                        renewalSLA: p.renewalSLA.seconds, revocationSLA: p.revocationSLA.seconds, offlineTolerance: p.offlineTolerance.seconds,
                        reenrollAfterExpiry: p.reenrollAfterExpiry, exceptionMaxDuration: p.exceptionMaxDuration.seconds)
            .with(reenrollWindow: p.reenrollWindow.seconds, reapproveAfterRevocation: p.reapproveAfterRevocation)
    }

    static func policy(from v: ClassPolicyView) throws -> DeviceClassPolicy {
        var owners: [OwnerRole] = []
        for role in v.requiredOwners {
            guard let r = OwnerRole(rawValue: role) else { throw WireError(.badRequest, "unknown owner role '\(role)'") }
            owners.append(r)
        }
        var p = DeviceClassPolicy(name: v.name, ttl: .seconds(v.ttl), maxTTL: .seconds(v.maxTTL), renewAt: v.renewAt, requiredOwners: owners,
                                  keyAlgorithms: v.keyAlgorithms, rotateKeys: v.rotateKeys)
        p.bootstrapMethods = v.bootstrapMethods
        p.renewalSLA = .seconds(v.renewalSLA)
        p.revocationSLA = .seconds(v.revocationSLA)
        p.offlineTolerance = .seconds(v.offlineTolerance)
        p.reenrollAfterExpiry = v.reenrollAfterExpiry
        if let window = v.reenrollWindow { p.reenrollWindow = .seconds(window) }
        p.exceptionMaxDuration = .seconds(v.exceptionMaxDuration)
        p.reapproveAfterRevocation = v.reapproveAfterRevocation ?? false
        return p
    }

    /// The same bounds as the configuration file's `[class.NAME]`.
    static func validate(_ v: ClassPolicyView) throws -> DeviceClassPolicy {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw WireError(.badRequest, "class \(v.name): \(message)") } }
        try check(DeviceID.isWellFormed(v.name), "name must match [a-z0-9][a-z0-9.-]*")
        try check((10...(825 * 86400)).contains(v.maxTTL), "maxTTL must be 10 s to 825 days")
        try check((10...v.maxTTL).contains(v.ttl), "ttl must be 10 s to maxTTL")
        try check((0.1...0.95).contains(v.renewAt), "renewAt must be 0.1 to 0.95")
        try check(!v.keyAlgorithms.isEmpty && v.keyAlgorithms.allSatisfy(isKnownKeyAlgorithm), "keyAlgorithms must be among \(keyAlgorithms)")
        try check(!v.bootstrapMethods.isEmpty && v.bootstrapMethods.allSatisfy(bootstrapMethods.contains), "bootstrapMethods must be among \(bootstrapMethods)")
        try check((0...v.maxTTL).contains(v.renewalSLA), "renewalSLA must be 0 to maxTTL")
        try check((1...(30 * 86400)).contains(v.revocationSLA), "revocationSLA must be 1 s to 30 days")
        try check((60...(366 * 86400)).contains(v.offlineTolerance), "offlineTolerance must be 60 s to 366 days")
        try check((60...(366 * 86400)).contains(v.exceptionMaxDuration), "exceptionMaxDuration must be 60 s to 366 days")
        try check(v.reenrollWindow.map { (60...(366 * 86400)).contains($0) } ?? true, "reenrollWindow must be 60 s to 366 days")
        try check(Set(v.requiredOwners).count == v.requiredOwners.count, "requiredOwners has duplicates")
        return try policy(from: v)
    }
}
