#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// The agent's configuration file. Every option is documented in
/// `deploy/agent/agent.conf`.
package struct AgentConfiguration: Sendable {
    package var path: String
    package var deviceID: DeviceID
    package var stateDirectory: String
    /// Root and issuing CA certificates installed with the agent: verify the broker and commands.
    package var trustBundle: String
    /// File holding the one-time enrollment token (read once, when no credential exists).
    package var tokenFile: String?
    package var brokerHost: String
    package var operationalPort: Int
    package var bootstrapPort: Int
    package var keepAlive: Int
    /// Fraction of the lifetime at which to renew when the controller gives none.
    package var renewAt: Double
    /// Half-width of the random spread around the renewal point, as a fraction of the lifetime.
    package var renewJitter: Double
    /// How long to wait for the controller's reply before asking again.
    package var requestTimeout: Duration
    package var maxRetryDelay: Duration
    /// Offline past notAfter: ask to re-enroll with the expired credential's key (the controller's class policy decides).
    package var reenrollAfterExpiry: Bool
    /// After the controller refused a re-enrollment, how long before asking again.
    package var reenrollRetry: Duration
    package var hooks = HookConfiguration()

    package static func load(path: String) throws(ConfigError) -> AgentConfiguration {
        let file = try ConfigFile.load(path: path)
        var r = ConfigReader(file)
        let idText = try r.string("agent", "device_id")
        guard let id = DeviceID(idText), !id.isReserved else {
            throw ConfigError(path: path, line: file.sections["agent"]?["device_id"]?.line,
                              message: "device_id '\(idText)' must match ^[a-z0-9][a-z0-9.-]{0,62}$ and not start with lanyard-")
        }
        var config = AgentConfiguration(
            path: path,
            deviceID: id,
            stateDirectory: r.resolve(try r.string("agent", "state_dir", default: "/var/lib/lanyard-agent")),
            trustBundle: r.resolve(try r.string("agent", "trust_bundle")),
            tokenFile: r.optionalString("agent", "token_file").map(r.resolve),
            brokerHost: try r.string("broker", "host", default: "127.0.0.1"),
            operationalPort: try r.int("broker", "port", default: 8883, range: 1...65535),
            bootstrapPort: try r.int("broker", "bootstrap_port", default: 8884, range: 1...65535),
            keepAlive: try r.int("broker", "keepalive", default: 60, range: 5...3600),
            renewAt: try r.double("renewal", "renew_at", default: 2.0 / 3.0, range: 0.1...0.95),
            renewJitter: try r.double("renewal", "jitter", default: 0.05, range: 0...0.2),
            requestTimeout: try r.duration("renewal", "request_timeout", default: .seconds(20), range: .seconds(1)...(.seconds(600))),
            maxRetryDelay: try r.duration("renewal", "max_retry_delay", default: .seconds(300), range: .seconds(1)...(.seconds(86400))),
            reenrollAfterExpiry: try r.bool("renewal", "reenroll_after_expiry", default: true),
            reenrollRetry: try r.duration("renewal", "reenroll_retry", default: .seconds(3600), range: .seconds(10)...(.seconds(7 * 86400))))
        config.hooks = HookConfiguration(
            onRenew: try r.optionalNonEmpty("hooks", "on_renew"),
            onRevoke: try r.optionalNonEmpty("hooks", "on_revoke"),
            timeout: try r.duration("hooks", "timeout", default: .seconds(30), range: .seconds(1)...(.seconds(3600))))
        try r.finish()
        return config
    }
}
