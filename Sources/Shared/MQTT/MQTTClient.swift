#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization
internal import CMosquitto

/// An MQTT 5 client over TLS (libmosquitto), supervised by its own network
/// thread: it connects, reconnects forever with exponential backoff and full
/// jitter, re-subscribes on every connect, and reports on `events`.
///
/// libmosquitto's `loop_start` thread is not used: on 2.0.11 it returns
/// silently on TLS, auth and DNS errors and never reconnects.
///
/// `@unchecked Sendable`: the only state is the immutable configuration and
/// `MQTTSession`, which is itself safe to use from any thread (see there).
package final class MQTTClient: @unchecked Sendable {
    private let session: MQTTSession
    package let events: AsyncStream<MQTTEvent>

    package init(_ configuration: MQTTConfiguration, log: (@Sendable (String) -> Void)? = nil) throws {
        let (stream, continuation) = AsyncStream<MQTTEvent>.makeStream(bufferingPolicy: .unbounded)
        self.events = stream
        self.session = try MQTTSession(configuration, log: log, continuation: continuation)
    }

    deinit {
        session.stop()
    }

    /// Remembers `filter`; it is (re)subscribed on every connect, and at once
    /// if the client is connected now.
    package func addSubscription(_ filter: String, qos: Int = 1) {
        session.addSubscription(filter, qos: qos)
    }

    /// Starts the network thread. Idempotent; a stopped client stays stopped.
    package func start() {
        session.start()
    }

    /// Sends DISCONNECT, ends the network thread and finishes `events`.
    /// Safe to call more than once.
    package func stop() {
        session.stop()
    }

    /// Publishes; throws `not_connected` when offline (nothing is queued).
    /// Returns the message id.
    @discardableResult
    package func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) throws -> Int32 {
        try session.publish(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    /// Drops the connection (if any) and connects again at once, re-reading
    /// the certificate and key files.
    package func reconnectNow() {
        session.reconnectNow()
    }

    /// Raises the reconnect delay to at least `seconds` (0 restores the
    /// configured backoff): with an expired certificate every attempt is
    /// refused, and a handful of TLS handshakes a minute is enough.
    package func setReconnectFloor(_ seconds: Double) {
        session.setReconnectFloor(seconds)
    }

    /// True from `.connected` until the connection is lost.
    package var isConnected: Bool {
        session.isConnected
    }
}

// MARK: - The owner of the `mosquitto*`

/// Calls `mosquitto_lib_init` exactly once (it is not thread-safe); Swift
/// initialises a static `let` lazily and atomically.
enum MosquittoLibrary {
    static let initialised: Int32 = mosquitto_lib_init()
}

/// Owns the `mosquitto*` and destroys it in `deinit`; retained by the network
/// thread while it runs, so callbacks never see a dangling `userdata`.
///
/// `@unchecked Sendable`: mutable state lives in `state` (a `Mutex`);
/// `mosq` is used from other threads only through calls libmosquitto makes
/// thread-safe once `mosquitto_threaded_set(true)` is set (publish, subscribe,
/// disconnect queue packets and wake the loop); `mosquitto_loop` and the
/// (re)connect calls run on the network thread only. libmosquitto calls are
/// never made while holding `state`, except subscribe (which only takes
/// libmosquitto's outgoing-queue mutex, never held while calling back).
final class MQTTSession: @unchecked Sendable {
    private struct Subscription {
        var filter: String
        var qos: Int32
    }

    private enum Phase {
        case idle  // not started
        case connecting  // waiting for CONNACK
        case subscribing  // CONNACK ok, waiting for SUBACKs
        case ready  // `.connected` emitted
        case down  // between attempts
    }

    private struct State {
        var started = false
        var stopping = false
        var reconnectRequested = false
        var phase = Phase.idle
        var subscriptions: [Subscription] = []
        /// SUBACKs awaited before `.connected`.
        var pendingConnectSubscriptions: Set<Int32> = []
        /// Message id -> filter, for refusal messages.
        var subscriptionsInFlight: [Int32: String] = [:]
        /// Why the current attempt failed, first reason wins.
        var failure: String?
        /// `.connected` was emitted during the current attempt.
        var reachedReady = false
        /// libmosquitto error log lines of the current attempt (OpenSSL errors).
        var errorLog: [String] = []
        /// Lowest delay between attempts, set by the owner (see setReconnectFloor).
        var reconnectFloor: Double = 0
        var thread: pthread_t?
    }

    let configuration: MQTTConfiguration
    private let mosq: OpaquePointer
    private let log: (@Sendable (String) -> Void)?
    private let continuation: AsyncStream<MQTTEvent>.Continuation
    private let state = Mutex(State())
    /// Wakes the network thread from a backoff sleep.
    private let wakeup = DispatchSemaphore(value: 0)
    /// Signalled by the network thread when it ends.
    private let exited = DispatchSemaphore(value: 0)

    init(
        _ configuration: MQTTConfiguration,
        log: (@Sendable (String) -> Void)?,
        continuation: AsyncStream<MQTTEvent>.Continuation
    ) throws {
        _ = MosquittoLibrary.initialised
        try Self.validate(configuration)
        self.configuration = configuration
        self.log = log
        self.continuation = continuation
        guard let handle = mosquitto_new(configuration.clientID, true, nil) else {
            throw MQTTError(
                code: "client_create_failed",
                message: "mosquitto_new failed for client id \(configuration.clientID): errno \(errno)")
        }
        self.mosq = handle
        // From here on deinit destroys `handle`, also when a setup step throws.
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        try configure()
    }

    deinit {
        mosquitto_destroy(mosq)
    }

    private static func validate(_ c: MQTTConfiguration) throws(MQTTError) {
        func bad(_ message: String) -> MQTTError { MQTTError(code: "invalid_configuration", message: message) }
        if c.host.isEmpty { throw bad("host is empty") }
        if !(1...65535).contains(c.port) { throw bad("port \(c.port) out of range") }
        if c.clientID.isEmpty { throw bad("client id is empty") }
        if (c.certFile == nil) != (c.keyFile == nil) { throw bad("certFile and keyFile go together") }
        if c.keepAlive < 5 || c.keepAlive > 65535 { throw bad("keepAlive \(c.keepAlive) out of range 5...65535") }
        if !(c.reconnectMinDelay > 0) || c.reconnectMaxDelay < c.reconnectMinDelay {
            throw bad("reconnect delays must satisfy 0 < min <= max")
        }
        if c.maxPayload < 0 { throw bad("maxPayload is negative") }
        if !(c.connectTimeout > 0) { throw bad("connectTimeout must be positive") }
        if let will = c.will, !(0...2).contains(will.qos) { throw bad("will qos \(will.qos) out of range") }
    }

    private func configure() throws(MQTTError) {
        let c = configuration
        try MosquittoStatus.check(
            mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, lanyard_mqtt_protocol_v5()),
            code: "option_failed", "set MQTT 5")
        try MosquittoStatus.check(mosquitto_threaded_set(mosq, true), code: "option_failed", "set threaded")
        // Requests and replies are single small packets: Nagle would hold one
        // back until the previous segment's delayed ACK (~40 ms on loopback).
        try MosquittoStatus.check(mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1), code: "option_failed", "set TCP_NODELAY")
        // Server verification is always on: SSL_VERIFY_PEER, host name checked.
        try MosquittoStatus.check(
            mosquitto_tls_set(mosq, c.caFile, nil, c.certFile, c.keyFile, nil),
            code: "tls_setup_failed", "TLS files (ca \(c.caFile), cert \(c.certFile ?? "-"), key \(c.keyFile ?? "-"))")
        try MosquittoStatus.check(
            mosquitto_tls_opts_set(mosq, 1, c.tlsVersion, nil), code: "tls_setup_failed", "TLS options")
        try MosquittoStatus.check(mosquitto_tls_insecure_set(mosq, false), code: "tls_setup_failed", "TLS host check")
        if let will = c.will {
            let rc = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set(
                    mosq, will.topic, Int32(bytes.count), bytes.baseAddress, Int32(will.qos), will.retain)
            }
            try MosquittoStatus.check(rc, code: "invalid_configuration", "last will on \(will.topic)")
        }
        mosquitto_connect_v5_callback_set(mosq, mqttOnConnect)
        mosquitto_disconnect_v5_callback_set(mosq, mqttOnDisconnect)
        mosquitto_subscribe_v5_callback_set(mosq, mqttOnSubscribe)
        mosquitto_message_v5_callback_set(mosq, mqttOnMessage)
        mosquitto_log_callback_set(mosq, mqttOnLog)
    }

    // MARK: API (any thread)

    var isConnected: Bool {
        state.withLock { $0.phase == .ready }
    }

    func addSubscription(_ filter: String, qos: Int) {
        let qos = Int32(max(0, min(2, qos)))
        state.withLock { state in
            state.subscriptions.removeAll { $0.filter == filter }
            state.subscriptions.append(Subscription(filter: filter, qos: qos))
            // Before CONNACK the connect callback subscribes everything.
            guard state.phase == .subscribing || state.phase == .ready else { return }
            subscribeLocked(&state, filter: filter, qos: qos, beforeReady: false)
        }
    }

    func start() {
        let context = Unmanaged.passRetained(self)
        let started: Bool = state.withLock { state in
            guard !state.started, !state.stopping else { return false }
            state.started = true
            state.phase = .down
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, mqttNetworkThreadMain, context.toOpaque())
            guard rc == 0 else {
                state.started = false
                return false
            }
            state.thread = thread
            return true
        }
        if !started {
            context.release()
        }
    }

    func stop() {
        let thread: pthread_t? = state.withLock { state in
            if state.stopping { return nil }
            state.stopping = true
            defer { state.thread = nil }
            return state.thread
        }
        guard let thread else {
            // Never started (or already stopped): just close the stream.
            continuation.finish()
            return
        }
        // Queues DISCONNECT and wakes mosquitto_loop; the thread sends it.
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
        wakeup.signal()
        if pthread_equal(thread, pthread_self()) != 0 {
            pthread_detach(thread)
        } else if exited.wait(timeout: .now() + 5) == .success {
            pthread_join(thread, nil)
        } else {
            // Stuck in a blocking call (DNS): it holds its own reference to
            // this session and exits when the call returns.
            log?("mqtt network thread still busy after stop; detaching")
            pthread_detach(thread)
        }
        continuation.finish()
    }

    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws -> Int32 {
        guard (0...2).contains(qos) else {
            throw MQTTError(code: "invalid_argument", message: "qos \(qos) out of range")
        }
        guard isConnected else {
            throw MQTTError(code: "not_connected", message: "not connected to \(configuration.host):\(configuration.port)")
        }
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(
                mosq, &mid, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos), retain, nil)
        }
        try MosquittoStatus.check(rc, code: "publish_failed", "publish to \(topic)")
        return mid
    }

    func setReconnectFloor(_ seconds: Double) {
        state.withLock { $0.reconnectFloor = max(0, seconds) }
    }

    func reconnectNow() {
        let active: Bool = state.withLock { state in
            guard state.started, !state.stopping else { return false }
            state.reconnectRequested = true
            return true
        }
        guard active else { return }
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
        wakeup.signal()
    }

    // MARK: Network thread

    var idleWaitMilliseconds: Int32 {
        Int32(max(1000, min(configuration.keepAlive * 250, 60_000)))
    }

    func runNetworkLoop() {
        var attempt = 0
        while true {
            let proceed: Bool = state.withLock { state in
                guard !state.stopping else { return false }
                state.reconnectRequested = false
                state.phase = .connecting
                state.failure = nil
                state.reachedReady = false
                state.errorLog = []
                state.pendingConnectSubscriptions = []
                state.subscriptionsInFlight = [:]
                return true
            }
            guard proceed else { break }

            // Non-blocking TCP connect; TLS and CONNECT proceed in mosquitto_loop.
            var rc = mosquitto_connect_async(
                mosq, configuration.host, Int32(configuration.port), Int32(configuration.keepAlive))
            let deadline = DispatchTime.now() + configuration.connectTimeout
            while rc == Int32(MOSQ_ERR_SUCCESS.rawValue) {
                let (leave, waiting) = state.withLock {
                    ($0.stopping || $0.reconnectRequested, $0.phase == .connecting || $0.phase == .subscribing)
                }
                if leave { break }
                if waiting {
                    // libmosquitto 2.0.11 does not notice a refused async
                    // connect under TLS (mosquitto_loop keeps returning
                    // success): check the socket ourselves, and give up on a
                    // handshake that never completes.
                    if let error = pendingSocketError() {
                        // Let libmosquitto read a pending TLS alert first: its
                        // error (e.g. "certificate revoked") says more.
                        rc = mosquitto_loop(mosq, 10, 1)
                        if rc != Int32(MOSQ_ERR_SUCCESS.rawValue) { break }
                        recordFailure("connect to \(configuration.host):\(configuration.port): \(error)")
                        break
                    }
                    if DispatchTime.now() > deadline {
                        recordFailure("no CONNACK/SUBACK within \(configuration.connectTimeout) s")
                        break
                    }
                }
                // Idle, the thread sleeps a quarter of the keepalive: often
                // enough for libmosquitto to send PINGREQ in time, rarely
                // enough not to wake a gateway every second. Publishes,
                // disconnects and stop() interrupt the wait (libmosquitto's
                // socket pair in threaded mode).
                rc = mosquitto_loop(mosq, waiting ? 100 : idleWaitMilliseconds, 1)
            }

            // The attempt is over: report it once, as a failure or a loss.
            let (wasReady, stopping, requested, reason): (Bool, Bool, Bool, String) = state.withLock { state in
                let wasReady = state.reachedReady
                var reason = state.failure ?? MosquittoStatus.text(rc)
                if !state.errorLog.isEmpty {
                    reason += "; " + state.errorLog.suffix(3).joined(separator: "; ")
                }
                state.phase = .down
                return (wasReady, state.stopping, state.reconnectRequested, reason)
            }
            if stopping {
                flushDisconnect()
                break
            }
            if requested {
                // Close what is left of the old connection before reconnecting.
                flushDisconnect()
                if wasReady { continuation.yield(.disconnected(MQTTEvent.reconnectRequested)) }
                attempt = 0
                continue
            }
            let target = "\(configuration.host):\(configuration.port)"
            if wasReady {
                attempt = 0
                log?("mqtt connection lost server=\(target) reason=\(reason)")
                continuation.yield(.disconnected(reason))
            } else {
                log?("mqtt connection failed server=\(target) reason=\(reason)")
                continuation.yield(.connectionFailed(reason))
            }
            let delay = backoff(attempt: attempt)
            attempt += 1
            sleep(seconds: delay)
        }
        state.withLock { $0.phase = .down }
        continuation.finish()
        exited.signal()
    }

    private func recordFailure(_ text: String) {
        state.withLock { state in
            if state.failure == nil { state.failure = text }
        }
    }

    /// Detects a refused or closed socket while connecting. libmosquitto
    /// 2.0.11 leaves a refused async TLS connect half-open (the socket is at
    /// EOF/HUP, SO_ERROR already cleared) and never reports it.
    private func pendingSocketError() -> String? {
        let fd = mosquitto_socket(mosq)
        guard fd >= 0 else { return nil }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
        guard poll(&descriptor, 1, 0) == 1 else { return nil }
        let revents = Int32(descriptor.revents)
        if revents & (Int32(POLLERR) | Int32(POLLHUP)) != 0 {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            return error != 0 ? String(cString: strerror(error)) : "connection refused or closed"
        }
        if revents & Int32(POLLIN) != 0 {
            var byte: UInt8 = 0
            if recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0 { return "connection closed by the server" }
        }
        return nil
    }

    /// Lets a queued DISCONNECT go out and the socket close (bounded).
    private func flushDisconnect() {
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
        for _ in 0..<20 {
            if mosquitto_socket(mosq) < 0 { break }
            if mosquitto_loop(mosq, 50, 1) != Int32(MOSQ_ERR_SUCCESS.rawValue) { break }
        }
    }

    /// Exponential backoff with full jitter, never below the minimum.
    private func backoff(attempt: Int) -> Double {
        let cap = min(configuration.reconnectMaxDelay, configuration.reconnectMinDelay * pow(2, Double(min(attempt, 30))))
        let floor = state.withLock { $0.reconnectFloor }
        return max(configuration.reconnectMinDelay, floor, Double.random(in: 0...cap))
    }

    /// Sleeps up to `seconds`, returning early on stop() or reconnectNow().
    private func sleep(seconds: Double) {
        let deadline = DispatchTime.now() + seconds
        while DispatchTime.now() < deadline {
            if state.withLock({ $0.stopping || $0.reconnectRequested }) { return }
            _ = wakeup.wait(timeout: deadline)
        }
    }

    // MARK: Callbacks (network thread, inside mosquitto_loop)

    /// Sends SUBSCRIBE while holding `state` so the SUBACK handler (network
    /// thread) always finds the message id.
    private func subscribeLocked(_ state: inout State, filter: String, qos: Int32, beforeReady: Bool) {
        var mid: Int32 = 0
        let rc = mosquitto_subscribe_v5(mosq, &mid, filter, qos, 0, nil)
        guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
            let text = "\(filter): \(MosquittoStatus.text(rc))"
            log?("mqtt subscribe failed \(text)")
            continuation.yield(.subscriptionRefused(text))
            return
        }
        state.subscriptionsInFlight[mid] = filter
        if beforeReady { state.pendingConnectSubscriptions.insert(mid) }
    }

    fileprivate func handleConnect(reasonCode: Int32) {
        guard reasonCode == 0 else {
            state.withLock { state in
                if state.failure == nil { state.failure = "CONNACK refused: \(MosquittoStatus.reasonText(reasonCode))" }
            }
            return
        }
        let ready: Bool = state.withLock { state in
            state.phase = .subscribing
            for subscription in state.subscriptions {
                subscribeLocked(&state, filter: subscription.filter, qos: subscription.qos, beforeReady: true)
            }
            guard state.pendingConnectSubscriptions.isEmpty else { return false }
            state.phase = .ready
            state.reachedReady = true
            return true
        }
        if ready { announceConnected() }
    }

    fileprivate func handleSubscribe(mid: Int32, granted: [Int32]) {
        let (filter, ready): (String?, Bool) = state.withLock { state in
            let filter = state.subscriptionsInFlight.removeValue(forKey: mid)
            guard state.pendingConnectSubscriptions.remove(mid) != nil,
                state.pendingConnectSubscriptions.isEmpty, state.phase == .subscribing
            else { return (filter, false) }
            state.phase = .ready
            state.reachedReady = true
            return (filter, true)
        }
        for code in granted where code >= 0x80 {
            let text = "\(filter ?? "mid \(mid)"): \(MosquittoStatus.reasonText(code))"
            log?("mqtt subscription refused \(text)")
            continuation.yield(.subscriptionRefused(text))
        }
        if ready { announceConnected() }
    }

    private func announceConnected() {
        log?("mqtt connected server=\(configuration.host):\(configuration.port) client=\(configuration.clientID)")
        continuation.yield(.connected)
    }

    fileprivate func handleDisconnect(code: Int32) {
        // `code` is a libmosquitto error for local failures and an MQTT 5
        // reason code when the broker sent DISCONNECT (both >= 0x80 then).
        let text = code >= 0x80 ? MosquittoStatus.reasonText(code) : MosquittoStatus.text(code)
        state.withLock { state in
            if state.failure == nil, code != 0 { state.failure = text }
            if state.phase == .ready || state.phase == .subscribing { state.phase = .down }
        }
    }

    fileprivate func handleMessage(_ message: MQTTMessage) {
        continuation.yield(.message(message))
    }

    fileprivate func handleOversizedMessage(topic: String, size: Int) {
        log?("mqtt message dropped topic=\(topic) size=\(size) max=\(configuration.maxPayload)")
    }

    fileprivate func handleLog(level: Int32, text: String) {
        guard level & (lanyard_mosq_log_err() | lanyard_mosq_log_warning()) != 0 else { return }
        state.withLock { state in
            state.errorLog.append(text)
            if state.errorLog.count > 10 { state.errorLog.removeFirst() }
        }
    }
}

// MARK: - C entry points

private func session(_ userdata: UnsafeMutableRawPointer?) -> MQTTSession? {
    guard let userdata else { return nil }
    return Unmanaged<MQTTSession>.fromOpaque(userdata).takeUnretainedValue()
}

private func mqttNetworkThreadMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let arg else { return nil }
    // Balanced by the passRetained in start(): the thread keeps the session alive.
    let session = Unmanaged<MQTTSession>.fromOpaque(arg).takeRetainedValue()
    session.runNetworkLoop()
    return nil
}

private func mqttOnConnect(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ reasonCode: Int32, _ flags: Int32,
    _ properties: OpaquePointer?
) {
    session(userdata)?.handleConnect(reasonCode: reasonCode)
}

private func mqttOnDisconnect(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ code: Int32, _ properties: OpaquePointer?
) {
    session(userdata)?.handleDisconnect(code: code)
}

private func mqttOnSubscribe(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ mid: Int32, _ count: Int32,
    _ granted: UnsafePointer<Int32>?, _ properties: OpaquePointer?
) {
    let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(max(0, count)))) } ?? []
    session(userdata)?.handleSubscribe(mid: mid, granted: codes)
}

private func mqttOnMessage(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ message: UnsafePointer<mosquitto_message>?,
    _ properties: OpaquePointer?
) {
    guard let session = session(userdata), let message else { return }
    let m = message.pointee
    let topic = m.topic.map { String(cString: $0) } ?? ""
    let length = Int(max(0, m.payloadlen))
    guard length <= session.configuration.maxPayload else {
        session.handleOversizedMessage(topic: topic, size: length)
        return
    }
    // Copy now: libmosquitto frees the message when the callback returns.
    let payload: [UInt8] =
        if let bytes = m.payload, length > 0 {
            Array(UnsafeRawBufferPointer(start: bytes, count: length))
        } else {
            []
        }
    session.handleMessage(MQTTMessage(topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain))
}

private func mqttOnLog(
    _ mosq: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ level: Int32, _ text: UnsafePointer<CChar>?
) {
    guard let text else { return }
    session(userdata)?.handleLog(level: level, text: String(cString: text))
}
