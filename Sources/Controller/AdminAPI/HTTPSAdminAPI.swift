import Foundation
import Shared

/// The HTTPS admin API (docs/admin-api.md, docs/openapi.yaml): `POST
/// /v1/{operation}` with the operation's parameters as the JSON body and a
/// bearer token. The answer is the result's JSON, or `{"error":{"code",
/// "message"}}` with an HTTP status that matches the code.
package struct HTTPSAdminAPI: Sendable {
    package let dispatcher: AdminDispatcher
    package let certificates: OperatorCertificates
    let log: Logger

    package init(dispatcher: AdminDispatcher, certificates: OperatorCertificates, log: Logger) {
        self.dispatcher = dispatcher
        self.certificates = certificates
        self.log = log
    }

    /// A bearer token when one is sent (it names the operator explicitly), else a verified operator client certificate.
    private func authenticate(_ request: HTTPRequest) -> AdminActor? {
        if let header = request.authorization {
            guard header.hasPrefix("Bearer ") else { return nil }
            return try? dispatcher.operators.authenticate(bearer: String(header.dropFirst(7)).trimmed())
        }
        guard let der = request.clientCertificate else { return nil }
        return try? certificates.authenticate(der: der, operators: dispatcher.operators)
    }

    /// Runs on the headers alone, before the body is read: unknown routes
    /// and callers without a valid token never get a body buffered.
    package func preflight(_ request: HTTPRequest) -> HTTPResponse? {
        switch route(request) {
        case .failure(let refusal): refusal.response
        case .success: nil
        }
    }

    private func route(_ request: HTTPRequest) -> Result<(AdminOperation, AdminActor), HTTPResponseRefusal> {
        guard request.path.hasPrefix("/v1/"), let op = AdminOperation(rawValue: String(request.path.dropFirst(4))) else {
            return .failure(HTTPResponseRefusal(HTTPSAdminAPI.error(WireError(.notFound, "no such operation: \(request.path.prefix(80)) (POST /v1/{operation})"))))
        }
        guard request.method == "POST" else { return .failure(HTTPResponseRefusal(HTTPSAdminAPI.error(WireError(.badRequest, "use POST"), status: 405))) }
        guard let actor = authenticate(request) else {
            let who = request.authorization != nil ? "unknown-token" : request.clientCertificate != nil ? "unknown-certificate" : "anonymous"
            dispatcher.auditUnauthenticated(who, path: request.path)
            return .failure(HTTPResponseRefusal(HTTPSAdminAPI.error(WireError(
                .unauthorized, "a valid operator token (Authorization: Bearer lyo_...) or operator client certificate is required"))))
        }
        return .success((op, actor))
    }

    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        // Authenticated again: the token may have been checked before the body arrived, but the operator is looked up once more here.
        let op: AdminOperation, actor: AdminActor
        switch route(request) {
        case .failure(let refusal): return refusal.response
        case .success(let routed): (op, actor) = routed
        }
        guard !request.bodyTooLarge else { return HTTPSAdminAPI.error(WireError(.badRequest, "request body too large"), status: 413) }
        let response = dispatcher.handle(op, params: request.body.isEmpty ? Array("{}".utf8) : request.body, actor: actor)
        if let error = response.error { return HTTPSAdminAPI.error(error) }
        return HTTPResponse(status: 200, body: Array(response.result ?? Data("{}".utf8)))
    }

    /// Codes map to the HTTP status a generic client expects; the code itself stays authoritative.
    package static func status(for code: String) -> UInt32 {
        switch WireError.Code(rawValue: code) {
        case .badRequest, .invalidRows, .invalidCursor: 400
        case .unauthorized: 401
        case .forbidden, .separationOfDuties: 403
        case .notFound: 404
        case .alreadyExists, .invalidTransition: 409
        case .ownersMissing, .policyViolation, .suspended, .revoked: 422
        default: 500
        }
    }

    static func error(_ error: WireError, status: UInt32? = nil) -> HTTPResponse {
        HTTPResponse(status: status ?? HTTPSAdminAPI.status(for: error.code), body: WireCodec.encode(ErrorBody(error: error)))
    }

    struct ErrorBody: Encodable {
        var error: WireError
    }
}

/// A refusal decided from the headers (a `Result` failure must be an `Error`).
struct HTTPResponseRefusal: Error {
    var response: HTTPResponse
    init(_ response: HTTPResponse) { self.response = response }
}
