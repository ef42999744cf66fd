import Foundation
import Shared

/// A request whose id and protocol version can be read once it is decoded.
protocol CertificateRequestMessage: Decodable {
    var v: Int? { get }
    var requestId: String { get }
}

extension EnrollRequest: CertificateRequestMessage {}
extension RenewRequest: CertificateRequestMessage {}

extension IssuanceService {
    /// `enroll/{id}/req` as it arrives: JSON in, the reply out.
    package func enroll(payload: [UInt8], topicDevice: DeviceID) -> CertificateReply {
        switch IssuanceService.decode(payload, as: EnrollRequest.self) {
        case .success(let request): return enroll(request, topicDevice: topicDevice)
        case .failure(let refusal): return refusal.reply
        }
    }

    /// `dev/{id}/renew/req` as it arrives: the reply, and the campaign the request names.
    package func renew(payload: [UInt8], device: DeviceID) -> (reply: CertificateReply, campaignId: String?) {
        switch IssuanceService.decode(payload, as: RenewRequest.self) {
        case .success(let request): return (renew(request, device: device), request.campaignId)
        case .failure(let refusal): return (refusal.reply, nil)
        }
    }

    struct Refusal: Error { let reply: CertificateReply }

    /// Decodes a request once. A request that does not decode, or speaks
    /// another protocol version, gets a coded `bad_request` reply carrying its
    /// request id when that can be read (else an empty one: the caller drops
    /// nothing, the device's own id check does). The id and version are read
    /// from a small envelope only when the full decode fails — the same
    /// answers as decoding the envelope first, without decoding every request twice.
    static func decode<R: CertificateRequestMessage>(_ payload: [UInt8], as type: R.Type) -> Result<R, Refusal> {
        func validID(_ id: String?) -> String { id.flatMap { IssuanceService.isValidRequestID($0) ? $0 : nil } ?? "" }
        func wrongVersion(_ v: Int, _ id: String?) -> Refusal {
            Refusal(reply: .failure(validID(id), WireError(.badRequest, "protocol version \(v) is not supported (this controller speaks \(protocolVersion))")))
        }
        do {
            let request = try WireCodec.decode(R.self, from: payload)
            if let v = request.v, v != protocolVersion { return .failure(wrongVersion(v, request.requestId)) }
            return .success(request)
        } catch {
            let envelope = try? WireCodec.decode(RequestEnvelope.self, from: payload)
            if let v = envelope?.v, v != protocolVersion { return .failure(wrongVersion(v, envelope?.requestId)) }
            return .failure(Refusal(reply: .failure(validID(envelope?.requestId), error)))
        }
    }
}
