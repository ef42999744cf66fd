internal import CMosquitto

/// An MQTT failure that crosses the module boundary: a stable `code` callers
/// can switch on and a human `message`.
///
/// Codes: `invalid_configuration`, `client_create_failed`, `tls_setup_failed`,
/// `option_failed`, `connect_failed`, `not_connected`, `publish_failed`,
/// `payload_too_large`, `invalid_argument`.
package struct MQTTError: Error, CustomStringConvertible, Sendable, Equatable {
    package var code: String
    package var message: String

    package init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { "\(code): \(message)" }
}

/// The one place libmosquitto result and reason codes become text and errors.
enum MosquittoStatus {
    /// Text for a libmosquitto return code (`MOSQ_ERR_*`).
    static func text(_ rc: Int32) -> String {
        "\(String(cString: mosquitto_strerror(rc))) (rc=\(rc))"
    }

    /// Text for an MQTT 5 reason code (CONNACK, SUBACK, DISCONNECT).
    static func reasonText(_ reasonCode: Int32) -> String {
        "\(String(cString: mosquitto_reason_string(reasonCode))) (reason=0x\(String(reasonCode, radix: 16)))"
    }

    /// Text for an MQTT 3.1.1 CONNACK code.
    static func connackText(_ code: Int32) -> String {
        "\(String(cString: mosquitto_connack_string(code))) (connack=\(code))"
    }

    /// Throws an `MQTTError` with `code` unless `rc` is `MOSQ_ERR_SUCCESS`.
    /// Oversized payloads map to `payload_too_large` and a missing
    /// connection to `not_connected`, whatever `code` the caller passed.
    static func check(_ rc: Int32, code: String, _ what: @autoclosure () -> String) throws(MQTTError) {
        guard rc != Int32(MOSQ_ERR_SUCCESS.rawValue) else { return }
        throw error(rc, code: code, what())
    }

    static func error(_ rc: Int32, code: String, _ what: String) -> MQTTError {
        let mapped: String
        switch rc {
        case Int32(MOSQ_ERR_PAYLOAD_SIZE.rawValue), Int32(MOSQ_ERR_OVERSIZE_PACKET.rawValue):
            mapped = "payload_too_large"
        case Int32(MOSQ_ERR_NO_CONN.rawValue):
            mapped = "not_connected"
        default:
            mapped = code
        }
        return MQTTError(code: mapped, message: "\(what): \(text(rc))")
    }
}
