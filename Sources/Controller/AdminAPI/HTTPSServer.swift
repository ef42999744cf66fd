import Foundation
internal import CMicroHTTPD
import Shared

/// One HTTP request as the admin API sees it, body already read.
package struct HTTPRequest: Sendable {
    package var method: String
    package var path: String
    /// The `Authorization` header, if any.
    package var authorization: String?
    package var body: [UInt8]
    /// Set when the body exceeded the limit; `body` is then empty.
    package var bodyTooLarge: Bool
}

package struct HTTPResponse: Sendable {
    package var status: UInt32
    package var body: [UInt8]
    package var contentType: String = "application/json"
    package init(status: UInt32, body: [UInt8], contentType: String = "application/json") {
        self.status = status
        self.body = body
        self.contentType = contentType
    }
}

/// An HTTPS server on libmicrohttpd: TLS with the PEM key and certificate in
/// memory, one thread per connection (handlers may block on the store), at
/// most 64 connections, a 30 s idle timeout and a body limit. Owns the
/// `MHD_Daemon*`; `stop()` or deinit shuts it down before anything it points
/// at is freed.
package final class HTTPSServer: @unchecked Sendable {
    // @unchecked Sendable: `daemon` is set once in `start` and cleared once in
    // `stop`; MHD's own threads only read `handler` and `maxBody`, which never change.
    private var daemon: OpaquePointer?
    let handler: @Sendable (HTTPRequest) -> HTTPResponse
    /// Called with the headers, before any body is read: a response here
    /// (e.g. no valid token) is sent at once and the body is never buffered.
    let preflight: @Sendable (HTTPRequest) -> HTTPResponse?
    let maxBody: Int
    private let keyPEM: UnsafeMutablePointer<CChar>
    private let certPEM: UnsafeMutablePointer<CChar>

    package struct StartError: Error, CustomStringConvertible {
        package var description: String
    }

    package init(certificatePEM: String, keyPEM: String, maxBody: Int = 32 << 20,
                 preflight: @escaping @Sendable (HTTPRequest) -> HTTPResponse? = { _ in nil },
                 handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.handler = handler
        self.preflight = preflight
        self.maxBody = maxBody
        self.keyPEM = strdup(keyPEM)
        self.certPEM = strdup(certificatePEM)
    }

    deinit {
        stop()
        // The key must not linger in freed heap memory.
        memset(keyPEM, 0, strlen(keyPEM))
        free(keyPEM)
        free(certPEM)
    }

    /// Binds `address:port` (IPv4) and starts serving.
    package func start(address: String, port: Int) throws {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else { throw StartError(description: "bad IPv4 address \(address)") }
        let flags = UInt32(MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_ERROR_LOG.rawValue)
        let context = Unmanaged.passUnretained(self).toOpaque()
        daemon = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                lanyard_mhd_start_https(flags, UInt16(port), $0, httpsAccessHandler, context, httpsRequestCompleted, nil,
                                        keyPEM, certPEM, 30, 64, 256 * 1024)
            }
        }
        guard daemon != nil else { throw StartError(description: "libmicrohttpd could not start HTTPS on \(address):\(port) (port in use, or a bad key/certificate)") }
    }

    package func stop() {
        if let daemon { MHD_stop_daemon(daemon) }
        daemon = nil
    }
}

/// The body of one request as it arrives in pieces; retained in MHD's
/// per-connection slot and released when the request completes.
private final class RequestState {
    var body: [UInt8] = []
    var tooLarge = false
}

private func httpsAccessHandler(cls: UnsafeMutableRawPointer?, connection: OpaquePointer?, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?,
                                version: UnsafePointer<CChar>?, uploadData: UnsafePointer<CChar>?, uploadDataSize: UnsafeMutablePointer<Int>?,
                                slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> MHD_Result {
    guard let cls, let connection, let slot, let uploadDataSize else { return .NO }
    let server = Unmanaged<HTTPSServer>.fromOpaque(cls).takeUnretainedValue()
    let authorization = lanyard_mhd_header(connection, "Authorization").map { String(cString: $0) }
    let methodName = method.map { String(cString: $0) } ?? ""
    let path = url.map { String(cString: $0) } ?? ""
    // First call: headers only. Refuse now if the headers already decide it; else make room for the body.
    guard let raw = slot.pointee else {
        if let refusal = server.preflight(HTTPRequest(method: methodName, path: path, authorization: authorization, body: [], bodyTooLarge: false)) {
            return queue(refusal, on: connection)
        }
        slot.pointee = Unmanaged.passRetained(RequestState()).toOpaque()
        return .YES
    }
    let state = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
    if uploadDataSize.pointee > 0 {
        if let uploadData, !state.tooLarge {
            if state.body.count + uploadDataSize.pointee > server.maxBody {
                state.tooLarge = true
                state.body = []
            } else {
                uploadData.withMemoryRebound(to: UInt8.self, capacity: uploadDataSize.pointee) {
                    state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: uploadDataSize.pointee))
                }
            }
        }
        uploadDataSize.pointee = 0
        return .YES
    }
    // Last call: the whole body is here.
    let request = HTTPRequest(method: methodName, path: path, authorization: authorization, body: state.body, bodyTooLarge: state.tooLarge)
    return queue(server.handler(request), on: connection)
}

private func queue(_ reply: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
    let response = reply.body.withUnsafeBytes {
        lanyard_mhd_response_copy($0.count, $0.baseAddress)
    }
    guard let response else { return .NO }
    defer { MHD_destroy_response(response) }
    _ = MHD_add_response_header(response, "Content-Type", reply.contentType)
    _ = MHD_add_response_header(response, "Cache-Control", "no-store")
    return MHD_queue_response(connection, reply.status, response)
}

private func httpsRequestCompleted(cls: UnsafeMutableRawPointer?, connection: OpaquePointer?, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                   code: MHD_RequestTerminationCode) {
    guard let slot, let raw = slot.pointee else { return }
    Unmanaged<RequestState>.fromOpaque(raw).release()
    slot.pointee = nil
}
