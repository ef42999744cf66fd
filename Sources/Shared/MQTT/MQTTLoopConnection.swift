#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
internal import CMosquitto

/// What an `MQTTLoopConnection` saw during its last read or write.
package enum MQTTLoopEvent: Sendable {
    /// CONNACK with this MQTT 5 reason code (0 = accepted).
    case connack(Int32)
    /// SUBACK for message id `mid`, with the granted QoS or reason per filter.
    case subscribed(mid: Int32, granted: [Int32])
    case message(MQTTMessage)
    /// The broker acknowledged (QoS 1) or the client sent (QoS 0) publish `mid`.
    case published(mid: Int32)
    /// The connection is gone: libmosquitto error or MQTT 5 reason code.
    case disconnected(String)
}

/// One MQTT 5 connection over TLS (libmosquitto), driven by its owner's
/// event loop instead of a thread of its own: the fleet simulator keeps
/// thousands of them on a few threads, each thread polling their sockets
/// (`MQTTPoller`) and calling `read()`, `write()` and `misc()`.
///
/// Single-threaded by design: the connection, its callbacks and its events
/// are only touched by the thread that drives it, so libmosquitto's threaded
/// mode is off and a publish goes straight to the socket. Callbacks copy what
/// they receive at once into `events`; the owner drains it with
/// `takeEvents()` after each call, outside libmosquitto. One connection
/// lives for one network connection: to reconnect (e.g. with a renewed
/// certificate) make a new one.
package final class MQTTLoopConnection {
    private let mosq: OpaquePointer
    package let clientID: String
    private var pending: [MQTTLoopEvent] = []
    /// The last libmosquitto/OpenSSL error log line (TLS alerts land here).
    package private(set) var lastErrorLog: String?
    private let maxPayload: Int

    /// - Parameters:
    ///   - tls: broker trust and, for mutual TLS, the client credentials.
    ///   - will: last will, published by the broker if the connection dies.
    ///   - tcpNoDelay: disable Nagle's algorithm on the socket (libmosquitto leaves it on).
    package init(clientID: String, tls: TLSClientContext, keepAlive: Int = 60, will: MQTTMessage? = nil, maxPayload: Int = 65536,
                 tcpNoDelay: Bool = false) throws {
        _ = MosquittoLibrary.initialised
        guard !clientID.isEmpty, clientID.utf8.count <= 65535 else {
            throw MQTTError(code: "invalid_configuration", message: "client id must be 1 to 65535 bytes")
        }
        guard (5...65535).contains(keepAlive) else {
            throw MQTTError(code: "invalid_configuration", message: "keepAlive \(keepAlive) out of range 5...65535")
        }
        guard let handle = mosquitto_new(clientID, true, nil) else {
            throw MQTTError(code: "client_create_failed", message: "mosquitto_new failed for client id \(clientID): errno \(errno)")
        }
        self.mosq = handle
        self.clientID = clientID
        self.maxPayload = maxPayload
        self.keepAlive = Int32(keepAlive)
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        try MosquittoStatus.check(
            mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, lanyard_mqtt_protocol_v5()), code: "option_failed", "set MQTT 5")
        if tcpNoDelay {
            try MosquittoStatus.check(mosquitto_int_option(handle, MOSQ_OPT_TCP_NODELAY, 1), code: "option_failed", "TCP_NODELAY")
        }
        // Our SSL_CTX as is: libmosquitto's defaults would want CA files on disk.
        try MosquittoStatus.check(
            mosquitto_int_option(handle, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0), code: "option_failed", "SSL_CTX without defaults")
        // libmosquitto takes its own reference to the SSL_CTX and frees it in mosquitto_destroy.
        try MosquittoStatus.check(
            mosquitto_void_option(handle, MOSQ_OPT_SSL_CTX, UnsafeMutableRawPointer(tls.context)), code: "tls_setup_failed", "SSL_CTX")
        if let will {
            guard (0...2).contains(will.qos) else { throw MQTTError(code: "invalid_configuration", message: "will qos \(will.qos)") }
            let rc = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set(handle, will.topic, Int32(bytes.count), bytes.baseAddress, Int32(will.qos), will.retain)
            }
            try MosquittoStatus.check(rc, code: "invalid_configuration", "last will on \(will.topic)")
        }
        mosquitto_connect_v5_callback_set(handle, loopOnConnect)
        mosquitto_disconnect_v5_callback_set(handle, loopOnDisconnect)
        mosquitto_subscribe_v5_callback_set(handle, loopOnSubscribe)
        mosquitto_message_v5_callback_set(handle, loopOnMessage)
        mosquitto_publish_v5_callback_set(handle, loopOnPublish)
        mosquitto_log_callback_set(handle, loopOnLog)
    }

    private let keepAlive: Int32

    deinit { mosquitto_destroy(mosq) }

    /// Starts a non-blocking TCP connect; TLS and CONNECT continue in `read()`/`write()`.
    package func connect(host: String, port: Int) throws {
        guard (1...65535).contains(port) else { throw MQTTError(code: "invalid_configuration", message: "port \(port)") }
        try MosquittoStatus.check(mosquitto_connect_async(mosq, host, Int32(port), keepAlive), code: "connect_failed", "connect to \(host):\(port)")
    }

    /// The socket to poll, or -1 when there is none.
    package var socket: Int32 { mosquitto_socket(mosq) }

    /// True when libmosquitto has bytes to send (poll for writability too).
    package var wantsWrite: Bool { mosquitto_want_write(mosq) }

    /// Reads what the socket has (TLS handshake included). False when the connection failed.
    package func read() -> Bool { settle(mosquitto_loop_read(mosq, 1)) }

    /// Writes what is queued. False when the connection failed.
    package func write() -> Bool { settle(mosquitto_loop_write(mosq, 1)) }

    /// Keepalive housekeeping; call about once a second. False when the connection failed.
    package func misc() -> Bool { settle(mosquitto_loop_misc(mosq)) }

    private func settle(_ rc: Int32) -> Bool {
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) { return true }
        var reason = MosquittoStatus.text(rc)
        if let lastErrorLog { reason += "; \(lastErrorLog)" }
        pending.append(.disconnected(reason))
        return false
    }

    /// Subscribes to every filter in one SUBSCRIBE; returns its message id.
    package func subscribe(_ filters: [String], qos: Int = 1) throws -> Int32 {
        guard !filters.isEmpty else { throw MQTTError(code: "invalid_argument", message: "no filters") }
        var mid: Int32 = 0
        let rc = withCStrings(filters) { pointers in
            mosquitto_subscribe_multiple(mosq, &mid, Int32(pointers.count), pointers.baseAddress, Int32(qos), 0, nil)
        }
        try MosquittoStatus.check(rc, code: "subscribe_failed", "subscribe")
        return mid
    }

    @discardableResult
    package func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) throws -> Int32 {
        guard (0...2).contains(qos) else { throw MQTTError(code: "invalid_argument", message: "qos \(qos) out of range") }
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(mosq, &mid, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos), retain, nil)
        }
        try MosquittoStatus.check(rc, code: "publish_failed", "publish to \(topic)")
        return mid
    }

    /// Queues DISCONNECT (no last will); the next `write()` sends it.
    package func disconnect() {
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
    }

    /// The events collected since the last call, oldest first.
    package func takeEvents() -> [MQTTLoopEvent] {
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }

    // Called from the C callbacks, on the driving thread, inside libmosquitto.
    fileprivate func record(_ event: MQTTLoopEvent) { pending.append(event) }
    fileprivate func recordLog(_ level: Int32, _ text: String) {
        if level & (lanyard_mosq_log_err() | lanyard_mosq_log_warning()) != 0 { lastErrorLog = text }
    }
    fileprivate var payloadLimit: Int { maxPayload }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeMutableBufferPointer { body($0) }
}

// MARK: - C entry points (the connection comes back from userdata; data is copied at once)

private func loopConnection(_ userdata: UnsafeMutableRawPointer?) -> MQTTLoopConnection? {
    guard let userdata else { return nil }
    return Unmanaged<MQTTLoopConnection>.fromOpaque(userdata).takeUnretainedValue()
}

private func loopOnConnect(_ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ reasonCode: Int32, _ flags: Int32, _ properties: OpaquePointer?) {
    loopConnection(userdata)?.record(.connack(reasonCode))
}

private func loopOnDisconnect(_ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ code: Int32, _ properties: OpaquePointer?) {
    let text = code >= 0x80 ? MosquittoStatus.reasonText(code) : MosquittoStatus.text(code)
    loopConnection(userdata)?.record(.disconnected(text))
}

private func loopOnSubscribe(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ mid: Int32, _ count: Int32, _ granted: UnsafePointer<Int32>?,
    _ properties: OpaquePointer?
) {
    let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(max(0, count)))) } ?? []
    loopConnection(userdata)?.record(.subscribed(mid: mid, granted: codes))
}

private func loopOnMessage(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ message: UnsafePointer<mosquitto_message>?, _ properties: OpaquePointer?
) {
    guard let connection = loopConnection(userdata), let message else { return }
    let m = message.pointee
    let length = Int(max(0, m.payloadlen))
    guard length <= connection.payloadLimit else { return }
    let topic = m.topic.map { String(cString: $0) } ?? ""
    let payload: [UInt8] = if let bytes = m.payload, length > 0 { Array(UnsafeRawBufferPointer(start: bytes, count: length)) } else { [] }
    connection.record(.message(MQTTMessage(topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain)))
}

private func loopOnPublish(_ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ mid: Int32, _ reasonCode: Int32, _ properties: OpaquePointer?) {
    loopConnection(userdata)?.record(.published(mid: mid))
}

private func loopOnLog(_ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ level: Int32, _ text: UnsafePointer<CChar>?) {
    guard let text else { return }
    loopConnection(userdata)?.recordLog(level, String(cString: text))
}

// MARK: - Poller

/// Readiness of many sockets for one thread (Linux epoll, level-triggered).
/// Each registration carries a caller token (e.g. a device index). Owns the
/// epoll descriptor and closes it in `deinit`. Single-threaded.
package final class MQTTPoller {
    private let epfd: Int32
    private var tokens = [UInt64](repeating: 0, count: 256)
    private var events = [UInt32](repeating: 0, count: 256)

    package struct Ready {
        package var token: UInt64
        package var readable: Bool
        package var writable: Bool
        package var failed: Bool
    }

    package init() throws {
        epfd = lanyard_epoll_create()
        guard epfd >= 0 else { throw MQTTError(code: "poller_failed", message: "epoll_create1: errno \(errno)") }
    }

    deinit { close(epfd) }

    private func control(_ op: Int32, _ fd: Int32, token: UInt64, write: Bool) -> Bool {
        lanyard_epoll_ctl(epfd, op, fd, lanyard_epoll_in() | (write ? lanyard_epoll_out() : 0), token) == 0
    }

    /// Starts watching `fd` (readable; writable too when `write`).
    package func add(_ fd: Int32, token: UInt64, write: Bool) -> Bool { control(0, fd, token: token, write: write) }
    package func modify(_ fd: Int32, token: UInt64, write: Bool) -> Bool { control(1, fd, token: token, write: write) }
    /// Stops watching `fd`; call it while `fd` is still open and yours.
    package func remove(_ fd: Int32) { _ = control(2, fd, token: 0, write: false) }

    /// Waits up to `timeoutMilliseconds` and returns the ready registrations (at most 256).
    package func wait(timeoutMilliseconds: Int32) -> [Ready] {
        let count = tokens.withUnsafeMutableBufferPointer { t in
            events.withUnsafeMutableBufferPointer { e in
                lanyard_epoll_wait(epfd, t.baseAddress, e.baseAddress, Int32(t.count), timeoutMilliseconds)
            }
        }
        guard count > 0 else { return [] }
        let failure = lanyard_epoll_hup_err()
        return (0..<Int(count)).map { i in
            Ready(token: tokens[i], readable: events[i] & (lanyard_epoll_in() | failure) != 0,
                  writable: events[i] & lanyard_epoll_out() != 0, failed: events[i] & failure != 0)
        }
    }
}
