/// A received (or will) message. The payload is copied out of libmosquitto.
package struct MQTTMessage: Sendable, Equatable {
    package var topic: String
    package var payload: [UInt8]
    package var qos: Int
    package var retain: Bool

    package init(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// What an `MQTTClient` reports on its `events` stream.
package enum MQTTEvent: Sendable {
    /// CONNACK was a success *and* every registered subscription got its
    /// SUBACK: a request published after this can get its reply.
    case connected
    /// A connection attempt failed (TCP, TLS, CONNACK). Human text with the
    /// libmosquitto error or the MQTT reason code. The client keeps retrying.
    case connectionFailed(String)
    /// An established connection was lost. The client keeps retrying.
    /// After `reconnectNow()` the reason is exactly `MQTTEvent.reconnectRequested`.
    case disconnected(String)
    /// The broker refused a subscription (SUBACK reason >= 0x80): filter and reason.
    /// Mosquitto 2.0's `acl_file` grants every SUBSCRIBE and filters at
    /// delivery, so an ACL refusal does not show up here with that broker.
    case subscriptionRefused(String)
    case message(MQTTMessage)

    /// The `.disconnected` reason of a session the client itself closed for
    /// `reconnectNow()`: not a failure of the connection.
    package static let reconnectRequested = "reconnect requested"
}

/// Connection settings. TLS is always on and the broker certificate is
/// always verified (chain to `caFile`, host name against its SAN).
package struct MQTTConfiguration: Sendable {
    package var host: String
    package var port: Int
    /// MQTT client id. On the operational listener the broker replaces it
    /// with the certificate CN (`use_username_as_clientid`).
    package var clientID: String
    /// Trust bundle (PEM) used to verify the broker.
    package var caFile: String
    /// Client certificate chain (PEM) and key. `nil` for server-auth-only TLS
    /// (the bootstrap listener). Re-read from disk on every (re)connect.
    package var certFile: String?
    package var keyFile: String?
    /// MQTT keepalive in seconds.
    package var keepAlive: Int = 30
    /// Last will, published by the broker when the connection dies.
    package var will: MQTTMessage? = nil
    /// Reconnect backoff: exponential with full jitter, never below
    /// `reconnectMinDelay`, capped at `reconnectMaxDelay` (seconds).
    package var reconnectMinDelay: Double = 0.5
    package var reconnectMaxDelay: Double = 30
    /// Seconds an attempt may take from TCP connect to `.connected`.
    package var connectTimeout: Double = 15
    /// Incoming messages with a bigger payload are dropped (and logged).
    package var maxPayload: Int = 65536
    /// Lowest TLS version offered ("tlsv1.2" or "tlsv1.3").
    package var tlsVersion: String = "tlsv1.2"

    package init(host: String, port: Int, clientID: String, caFile: String) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.caFile = caFile
    }
}
