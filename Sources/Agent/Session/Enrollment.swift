#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Shared

/// Enrollment over the bootstrap listener (TLS server auth only; the broker
/// lets client id X use only `enroll/X/…`). The key is generated here and
/// never leaves the device. The first time, the one-time token proves the
/// operator's approval; after an expiry, a proof signed with the expired
/// credential's key does (ReenrollmentProof), if the device's class allows it.
package struct Enrollment {
    package enum Proof {
        case token(String)
        /// The expired credential; `now` is the controller's time as this device estimates it.
        case expired(Credential, now: @Sendable () -> Date)
    }

    package var configuration: AgentConfiguration
    package var store: CredentialStore
    package var trust: [Certificate]
    package var log: Logger

    /// Refusals no retry can fix: the operator has to act.
    static let fatalCodes: Set<String> = [
        WireError.Code.badToken.rawValue, WireError.Code.tokenUsed.rawValue, WireError.Code.tokenExpired.rawValue,
        WireError.Code.identityMismatch.rawValue, WireError.Code.revoked.rawValue, WireError.Code.keyTypeNotAllowed.rawValue,
        WireError.Code.notRegistered.rawValue, WireError.Code.badRequest.rawValue, WireError.Code.badCSR.rawValue,
        WireError.Code.policyViolation.rawValue, WireError.Code.badReenrollment.rawValue,
        WireError.Code.reenrollmentNotAllowed.rawValue, WireError.Code.reenrollmentWindowPassed.rawValue,
    ]

    package struct Failure: Error, CustomStringConvertible {
        package var error: WireError
        package var description: String { error.description }
    }

    /// Enrolls, retrying transient failures with backoff until `stop` fires.
    /// Returns nil when stopped.
    package func run(_ proof: Proof, stop: ShutdownSignal) async throws -> Credential? {
        var mqttConfig = MQTTConfiguration(host: configuration.brokerHost, port: configuration.bootstrapPort,
                                           clientID: configuration.deviceID.rawValue, caFile: configuration.trustBundle)
        mqttConfig.keepAlive = 30
        let client = try MQTTClient(mqttConfig, log: { [log] in log.debug($0) })
        defer { client.stop() }
        let responseTopic = Topics.enrollResponse(configuration.deviceID)
        client.addSubscription(responseTopic, qos: 1)

        // One merged stream: broker events, timeouts, and the stop signal.
        let (events, continuation) = AsyncStream.makeStream(of: EnrollmentEvent.self)
        let forward = Task { for await e in client.events { continuation.yield(.mqtt(e)) } }
        let stopWatch = Task { _ = await stop.wait(); continuation.yield(.stop) }
        defer { forward.cancel(); stopWatch.cancel(); continuation.finish() }
        client.start()
        let kind = if case .expired = proof { "re-enrolling" } else { "enrolling" }
        log.info("\(kind) over the bootstrap listener", ["device": configuration.deviceID.rawValue, "port": String(configuration.bootstrapPort)])

        let key = try PrivateKey.generateP256()
        let csr = try CertificateSigningRequest.make(commonName: configuration.deviceID.rawValue, key: key)
        // The same request id and CSR on every retry: the controller answers a
        // repeat with the certificate it already issued.
        var request = EnrollRequest(requestId: makeRequestID(), deviceId: configuration.deviceID, csr: csr.pem, token: nil, agentVersion: agentVersion)
        if case .token(let token) = proof { request.token = token }
        var attempt = 0
        var rng = SystemRandomNumberGenerator()
        var timer: Task<Void, Never>?
        func arm(_ seconds: Double) {
            timer?.cancel()
            timer = Task { try? await Task.sleep(for: .seconds(seconds)); if !Task.isCancelled { continuation.yield(.retry) } }
        }
        func send() {
            guard client.isConnected else { return }
            do {
                // A fresh proof for every attempt: the controller accepts one only for a few minutes.
                if case .expired(let expired, let now) = proof {
                    request.reenrollment = try ReenrollmentProof.make(device: configuration.deviceID, requestID: request.requestId, csrPEM: request.csr,
                                                                      expiredChain: expired.chain, key: expired.key, now: now())
                }
                try client.publish(topic: Topics.enrollRequest(configuration.deviceID), payload: WireCodec.encode(request), qos: 1)
                arm(configuration.requestTimeout.timeInterval)
            } catch {
                log.warning("enrollment request not sent", ["error": "\(error)"])
            }
        }
        defer { timer?.cancel() }
        for await event in events {
            switch event {
            case .stop:
                return nil
            case .retry:
                attempt += 1
                send()
            case .mqtt(.connected):
                send()
            case .mqtt(.connectionFailed(let why)), .mqtt(.disconnected(let why)):
                log.warning("bootstrap connection failed", ["reason": why])
            case .mqtt(.subscriptionRefused(let why)):
                log.error("bootstrap subscription refused", ["reason": why])
            case .mqtt(.message(let message)):
                guard message.topic == responseTopic else { continue }
                guard let reply = try? WireCodec.decode(CertificateReply.self, from: message.payload) else {
                    log.warning("malformed enrollment reply ignored")
                    continue
                }
                guard reply.requestId == request.requestId else {
                    log.info("stale enrollment reply ignored", ["request": String(reply.requestId.prefix(64))])
                    continue
                }
                switch ReplyValidator.check(reply, pendingKey: key, device: configuration.deviceID, trust: trust, now: Date()) {
                case .issued(let chain):
                    let now = Int64(Date().timeIntervalSince1970)
                    let meta = GenerationMetadata(issuedAt: reply.issuedAt ?? now, renewAt: reply.renewAt, receivedAt: now)
                    let credential = try store.install(key: key, chain: chain, metadata: meta)
                    log.notice(kind == "enrolling" ? "enrolled" : "re-enrolled after expiry", ["device": configuration.deviceID.rawValue, "serial": credential.leaf.serialHex,
                                            "not_after": credential.leaf.notAfter.formatted(.iso8601)])
                    return credential
                case .refused(let error, let retryAfter):
                    if Enrollment.fatalCodes.contains(error.code) { throw Failure(error: error) }
                    let delay = Double(retryAfter ?? 0) + RenewalSchedule.retryDelay(attempt: attempt, cap: configuration.maxRetryDelay.timeInterval,
                                                                                     remaining: .infinity, using: &rng)
                    log.warning("enrollment refused, will retry", ["code": error.code, "reason": error.message, "retry_in": String(Int(delay))])
                    arm(delay)
                case .invalid(let why):
                    log.error("enrollment reply rejected", ["reason": why])
                    arm(RenewalSchedule.retryDelay(attempt: attempt, cap: configuration.maxRetryDelay.timeInterval, remaining: .infinity, using: &rng))
                }
            }
        }
        return nil
    }
}

enum EnrollmentEvent: Sendable {
    case mqtt(MQTTEvent)
    case retry
    case stop
}

/// Reported to the controller in requests and state.
package let agentVersion = "0.1.0"
