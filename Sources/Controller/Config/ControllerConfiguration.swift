import Foundation
import Shared

/// Policy of a device class (`[class.NAME]` in the controller config).
package struct DeviceClassPolicy: Sendable, Equatable {
    package var name: String
    package var ttl: Duration
    package var maxTTL: Duration
    /// Fraction of the lifetime after which devices renew.
    package var renewAt: Double
    package var requiredOwners: [OwnerRole]
    /// Key algorithms accepted in CSRs (names as `KeyAlgorithm.name`).
    package var keyAlgorithms: [String]
    /// A renewal must use a new key.
    package var rotateKeys: Bool
    /// How devices of the class may bootstrap (`token`, `idevid`).
    package var bootstrapMethods: [String] = ["token"]
    /// A renewal must have happened this long before notAfter (a finding otherwise).
    package var renewalSLA: Duration = .seconds(3600)
    /// From the revocation order to the CRL the broker enforces.
    package var revocationSLA: Duration = .seconds(900)
    /// How long a device may go unseen before it is a finding.
    package var offlineTolerance: Duration = .seconds(7 * 86400)
    /// A device offline past notAfter may re-enroll by proving it holds the
    /// key of its last certificate (ReenrollmentProof).
    package var reenrollAfterExpiry: Bool = false
    /// How long after notAfter that proof is still accepted.
    package var reenrollWindow: Duration = .seconds(7 * 86400)
    /// The longest an exception for this class may last.
    package var exceptionMaxDuration: Duration = .seconds(90 * 86400)
    /// A revoked device may be approved again (a new one-time token, a new
    /// key; its revoked certificates stay revoked): re-enrollment after a
    /// compromise, for classes whose devices can be re-provisioned.
    package var reapproveAfterRevocation: Bool = false

    package init(name: String, ttl: Duration, maxTTL: Duration, renewAt: Double, requiredOwners: [OwnerRole], keyAlgorithms: [String], rotateKeys: Bool,
                 reenrollAfterExpiry: Bool = false, reenrollWindow: Duration = .seconds(7 * 86400)) {
        self.reenrollAfterExpiry = reenrollAfterExpiry
        self.reenrollWindow = reenrollWindow
        self.name = name
        self.ttl = ttl
        self.maxTTL = maxTTL
        self.renewAt = renewAt
        self.requiredOwners = requiredOwners
        self.keyAlgorithms = keyAlgorithms
        self.rotateKeys = rotateKeys
    }
}

/// The controller's configuration file. Every option is documented in
/// `deploy/controller/controller.conf`.
package struct ControllerConfiguration: Sendable {
    package var path: String
    package var trustDomain: String
    package var pkiDirectory: String
    package var databasePath: String
    package var adminSocket: String
    /// Unix uids allowed to call the admin API besides the controller's own.
    package var adminUIDs: [UInt32]
    package var tokenTTL: Duration
    /// How far notBefore is set into the past, for devices with a slow clock.
    package var backdate: Duration
    package var commandTTL: Duration

    package var brokerHost: String
    package var brokerPort: Int
    package var crlFile: String
    /// A hashed directory (the broker's `capath`) holding `HASH.r0`, the CRL
    /// of every issuing CA still in use: during a CA rotation two CAs issue
    /// at once, and Mosquitto 2.0.11 reads only the first CRL of its `crlfile`.
    package var crlDirectory: String
    package var brokerPIDFile: String?
    package var brokerReloadCommand: String?

    package var crlValidity: Duration
    package var crlRefreshBefore: Duration

    package var classes: [String: DeviceClassPolicy]

    /// The HTTPS admin API (`[admin_api]`); nil when no port is configured.
    package var adminAPI: AdminAPIConfiguration?

    /// Campaign templates by lifecycle event type (`[event.TYPE]`); types not listed use the defaults.
    package var eventTemplates: [String: CampaignTemplate] = [:]

    package static func load(path: String) throws(ConfigError) -> ControllerConfiguration {
        let file = try ConfigFile.load(path: path)
        var r = ConfigReader(file)

        let trustDomain = try r.string("controller", "trust_domain")
        guard PKIInitializer.isValidTrustDomain(trustDomain) else {
            throw ConfigError(path: path, line: file.sections["controller"]?["trust_domain"]?.line, message: "trust_domain must use a-z, 0-9, '.', '-', '_'")
        }
        let pki = r.resolve(try r.string("controller", "pki_dir", default: "pki"))
        let db = r.resolve(try r.string("controller", "database", default: "lanyard.db"))
        let socket = r.resolve(try r.string("controller", "admin_socket", default: "admin.sock"))
        var uids: [UInt32] = []
        for text in r.list("controller", "admin_uids", default: []) {
            guard let uid = UInt32(text) else {
                throw ConfigError(path: path, line: file.sections["controller"]?["admin_uids"]?.line, message: "admin_uids: '\(text)' is not a uid")
            }
            uids.append(uid)
        }
        let tokenTTL = try r.duration("controller", "token_ttl", default: .seconds(86400), range: .seconds(60)...(.seconds(30 * 86400)))
        let backdate = try r.duration("controller", "backdate", default: .seconds(300), range: .zero...(.seconds(86400)))
        let commandTTL = try r.duration("controller", "command_ttl", default: .seconds(3600), range: .seconds(10)...(.seconds(7 * 86400)))

        let host = try r.string("broker", "host", default: "127.0.0.1")
        let port = try r.int("broker", "port", default: 8883, range: 1...65535)
        let crl = r.resolve(try r.string("broker", "crl_file", default: "crl.pem"))
        let crlDirectory = r.resolve(try r.string("broker", "crl_dir", default: "crl.d"))
        let pidFile = try r.optionalNonEmpty("broker", "pid_file").map(r.resolve)
        let reload = try r.optionalNonEmpty("broker", "reload_command")

        let crlValidity = try r.duration("crl", "validity", default: .seconds(7 * 86400), range: .seconds(60)...(.seconds(366 * 86400)))
        let crlRefresh = try r.duration("crl", "refresh_before", default: crlValidity / 2, range: .seconds(30)...crlValidity)

        var classes: [String: DeviceClassPolicy] = [:]
        for section in r.sections(withPrefix: "class.") {
            let name = String(section.dropFirst("class.".count))
            guard DeviceID.isWellFormed(name) else {
                throw ConfigError(path: path, line: file.sectionLines[section], message: "class name '\(name)' must match [a-z0-9][a-z0-9.-]*")
            }
            let maxTTL = try r.duration(section, "max_ttl", default: .seconds(30 * 86400), range: .seconds(10)...(.seconds(825 * 86400)))
            let ttl = try r.duration(section, "ttl", default: .seconds(86400), range: .seconds(10)...maxTTL)
            let renewAt = try r.double(section, "renew_at", default: 2.0 / 3.0, range: 0.1...0.95)
            var owners: [OwnerRole] = []
            for role in r.list(section, "required_owners", default: OwnerRole.allCases.map(\.rawValue)) {
                guard let owner = OwnerRole(rawValue: role) else {
                    throw ConfigError(path: path, line: file.sections[section]?["required_owners"]?.line,
                                      message: "unknown owner role '\(role)' (roles: \(OwnerRole.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                owners.append(owner)
            }
            let algorithms = r.list(section, "key_algorithms", default: ["P-256"])
            let rotate = try r.bool(section, "rotate_keys", default: true)
            var policy = DeviceClassPolicy(name: name, ttl: ttl, maxTTL: maxTTL, renewAt: renewAt, requiredOwners: owners,
                                           keyAlgorithms: algorithms, rotateKeys: rotate)
            policy.bootstrapMethods = r.list(section, "bootstrap_methods", default: ["token"])
            for method in policy.bootstrapMethods where !ClassPolicies.bootstrapMethods.contains(method) {
                throw ConfigError(path: path, line: file.sections[section]?["bootstrap_methods"]?.line,
                                  message: "unknown bootstrap method '\(method)' (known: \(ClassPolicies.bootstrapMethods.joined(separator: ", ")))")
            }
            // Default: half of what is left after the renewal point, so a device renewing on schedule is never a finding.
            let slaDefault = Duration.seconds(Int64(Double(ttl.seconds) * (1 - renewAt) / 2))
            policy.renewalSLA = try r.duration(section, "renewal_sla", default: slaDefault, range: .zero...maxTTL)
            policy.revocationSLA = try r.duration(section, "revocation_sla", default: .seconds(900), range: .seconds(1)...(.seconds(30 * 86400)))
            policy.offlineTolerance = try r.duration(section, "offline_tolerance", default: .seconds(7 * 86400), range: .seconds(60)...(.seconds(366 * 86400)))
            policy.reenrollAfterExpiry = try r.bool(section, "reenroll_after_expiry", default: false)
            policy.reenrollWindow = try r.duration(section, "reenroll_window", default: .seconds(7 * 86400), range: .seconds(60)...(.seconds(366 * 86400)))
            policy.exceptionMaxDuration = try r.duration(section, "exception_max", default: .seconds(90 * 86400), range: .seconds(60)...(.seconds(366 * 86400)))
            policy.reapproveAfterRevocation = try r.bool(section, "reapprove_after_revocation", default: false)
            classes[name] = policy
        }
        if classes.isEmpty {
            classes["default"] = DeviceClassPolicy(name: "default", ttl: .seconds(86400), maxTTL: .seconds(30 * 86400), renewAt: 2.0 / 3.0,
                                                   requiredOwners: OwnerRole.allCases, keyAlgorithms: ["P-256"], rotateKeys: true)
        }
        var adminAPI: AdminAPIConfiguration?
        if file.sections["admin_api"] != nil {
            let address = try r.string("admin_api", "address", default: "127.0.0.1")
            guard address.split(separator: ".").count == 4, address.split(separator: ".").allSatisfy({ UInt8($0) != nil }) else {
                throw ConfigError(path: path, line: file.sections["admin_api"]?["address"]?.line, message: "address must be an IPv4 address")
            }
            let apiPort = try r.int("admin_api", "port", default: 8443, range: 1...65535)
            let layout = PKILayout(directory: pki)
            let cert = r.resolve(try r.string("admin_api", "certificate", default: layout.adminAPICertificate))
            let key = r.resolve(try r.string("admin_api", "key", default: layout.adminAPIKey))
            adminAPI = AdminAPIConfiguration(address: address, port: apiPort, certificateFile: cert, keyFile: key)
        }
        var templates: [String: CampaignTemplate] = [:]
        for section in r.sections(withPrefix: "event.") {
            let type = String(section.dropFirst("event.".count))
            guard LifecycleEvents.campaignTypes.contains(type) else {
                throw ConfigError(path: path, line: file.sectionLines[section],
                                  message: "[event.\(type)]: campaign templates exist for \(LifecycleEvents.campaignTypes.sorted().joined(separator: ", "))")
            }
            var t = CampaignTemplate()
            t.rollout.maxPerMinute = try r.int(section, "max_per_minute", default: t.rollout.maxPerMinute, range: 1...CampaignRollout.unlimitedPerMinute)
            t.rollout.canary = try r.int(section, "canary", default: t.rollout.canary, range: 0...100_000)
            if r.optionalString(section, "abort_failure_pct") != nil {
                t.rollout.abortFailurePercent = try r.double(section, "abort_failure_pct", default: 100, range: 0.1...100)
            }
            t.rollout.abortMinExecuted = try r.int(section, "abort_min_executed", default: t.rollout.abortMinExecuted, range: 1...100_000)
            t.rollout.deviceTimeout = Int(try r.duration(section, "timeout", default: .seconds(600), range: .seconds(5)...(.seconds(7 * 86400))).seconds)
            t.rollout.retries = try r.int(section, "retries", default: t.rollout.retries, range: 0...10)
            t.rollout.window = Int(try r.duration(section, "window", default: .seconds(86400), range: .seconds(10)...(.seconds(30 * 86400))).seconds)
            if let type = r.optionalString(section, "abort_failure_type") {
                guard ["all", "failed", "timed_out"].contains(type) else {
                    throw ConfigError(path: path, line: file.sectionLines[section], message: "[\(section)] abort_failure_type must be all, failed or timed_out")
                }
                t.rollout.abortFailureType = type
            }
            if r.optionalString(section, "ramp_base") != nil {
                t.rollout.rampBasePerMinute = try r.int(section, "ramp_base", default: 1, range: 1...t.rollout.maxPerMinute)
                t.rollout.rampFactor = try r.double(section, "ramp_factor", default: 2, range: 1.01...5)
                t.rollout.rampEverySucceeded = try r.int(section, "ramp_every", default: 10, range: 1...100_000)
            }
            t.autoStart = try r.bool(section, "auto_start", default: true)
            templates[type] = t
        }
        try r.finish()
        var configuration = ControllerConfiguration(
            path: path, trustDomain: trustDomain, pkiDirectory: pki, databasePath: db, adminSocket: socket, adminUIDs: uids,
            tokenTTL: tokenTTL, backdate: backdate, commandTTL: commandTTL, brokerHost: host, brokerPort: port, crlFile: crl, crlDirectory: crlDirectory,
            brokerPIDFile: pidFile, brokerReloadCommand: reload, crlValidity: crlValidity, crlRefreshBefore: crlRefresh, classes: classes,
            adminAPI: adminAPI)
        configuration.eventTemplates = templates
        return configuration
    }

    /// The configuration `init` writes next to the PKI.
    package static func sample(trustDomain: String, brokerPort: Int, classTTL: String, apiPort: Int? = nil) -> String {
        """
        # Lanyard controller configuration (written by `lanyard-controller init`).
        # Relative paths are relative to this file. See deploy/controller/controller.conf
        # for every option.

        [controller]
        trust_domain = \(trustDomain)
        pki_dir = pki
        database = lanyard.db
        admin_socket = admin.sock
        token_ttl = 24h
        backdate = 5m

        [broker]
        host = 127.0.0.1
        port = \(brokerPort)
        # The controller writes the CRL here; the broker's `crlfile` points at it.
        crl_file = crl.pem
        # Every live issuing CA's CRL as HASH.r0 (the broker's `capath`): CA rotation.
        crl_dir = crl.d
        # The broker re-reads its crlfile on SIGHUP; give its pid file or a command.
        # pid_file = /run/mosquitto/mosquitto.pid
        # reload_command = systemctl reload mosquitto

        [crl]
        validity = 7d
        refresh_before = 3d

        \(apiPort.map { "[admin_api]\naddress = 127.0.0.1\nport = \($0)\n" } ?? "# HTTPS admin API for lanyardctl --server (operators with roles and tokens):\n# [admin_api]\n# address = 127.0.0.1\n# port = 8443\n")
        [class.default]
        ttl = \(classTTL)
        max_ttl = 30d
        renew_at = 0.66
        required_owners = identity, secarch, ops, procurement, business
        key_algorithms = P-256
        rotate_keys = true
        bootstrap_methods = token
        # renewal_sla defaults to half of the lifetime left after renew_at.
        revocation_sla = 15m
        offline_tolerance = 7d
        reenroll_after_expiry = false
        reenroll_window = 7d
        exception_max = 90d

        """
    }
}

/// Where the HTTPS admin API listens and the certificate it serves.
package struct AdminAPIConfiguration: Sendable {
    package var address: String
    package var port: Int
    package var certificateFile: String
    package var keyFile: String
}
