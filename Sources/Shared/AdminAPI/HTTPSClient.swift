#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
internal import COpenSSL

/// Why an HTTPS exchange failed before an HTTP answer arrived: `connect`,
/// `tls` (handshake or certificate verification), `io` or `protocol`.
package struct HTTPSClientError: Error, CustomStringConvertible, Sendable {
    package var code: String
    package var message: String
    package var description: String { "\(code): \(message)" }
}

/// A small HTTP/1.1 client over OpenSSL, enough for `lanyardctl`: one
/// request per connection (`Connection: close`), the server verified
/// against a CA file and by host name or IP address, TLS 1.2 at least.
package struct HTTPSClient: Sendable {
    package var host: String
    package var port: Int
    package var caFile: String
    package var timeoutSeconds: Int = 30
    package static let maxResponseBytes = 64 << 20

    package init(host: String, port: Int, caFile: String) {
        self.host = host
        self.port = port
        self.caFile = caFile
    }

    /// `https://host:port` (no path); nil when malformed.
    package init?(url: String, caFile: String) {
        guard url.hasPrefix("https://") else { return nil }
        var rest = String(url.dropFirst(8))
        if rest.hasSuffix("/") { rest.removeLast() }
        guard !rest.contains("/"), !rest.isEmpty else { return nil }
        var port = 443
        var host = rest
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(rest[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port, caFile: caFile)
    }

    package struct Response: Sendable {
        package var status: Int
        package var body: [UInt8]
    }

    package func post(_ path: String, body: [UInt8], headers: [(String, String)] = []) throws -> Response {
        let connection = try TLSConnection(host: host, port: port, caFile: caFile, timeoutSeconds: timeoutSeconds)
        var head = "POST \(path) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host):\(port)\r\nConnection: close\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nUser-Agent: lanyardctl\r\n"
        for (name, value) in headers {
            guard !name.contains(where: \.isNewline), !value.contains(where: \.isNewline) else {
                throw HTTPSClientError(code: "protocol", message: "header \(name) holds a line break")
            }
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        try connection.write(Array(head.utf8) + body)
        return try HTTPSClient.parse(try connection.readAll(limit: HTTPSClient.maxResponseBytes))
    }

    /// Status line, headers, and a body delimited by Content-Length, chunked
    /// encoding, or the end of the connection.
    static func parse(_ raw: [UInt8]) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else {
            throw HTTPSClientError(code: "protocol", message: "no complete HTTP header in \(raw.count) bytes")
        }
        let lines = String(decoding: raw[..<end], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let status = lines.first?.split(separator: " ")
        guard let status, status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else {
            throw HTTPSClientError(code: "protocol", message: "bad status line")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmed()
        }
        var body = Array(raw[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            body = try dechunk(body)
        } else if let length = headers["content-length"].flatMap(Int.init) {
            guard body.count >= length else { throw HTTPSClientError(code: "protocol", message: "body shorter than Content-Length") }
            body = Array(body.prefix(length))
        }
        return Response(status: code, body: body)
    }

    static func dechunk(_ data: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < data.count {
            guard let lineEnd = data[i...].indices.first(where: { data[$0] == 13 && $0 + 1 < data.count && data[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmed(), radix: 16), size >= 0 else {
                throw HTTPSClientError(code: "protocol", message: "bad chunk size")
            }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= data.count else { throw HTTPSClientError(code: "protocol", message: "truncated chunk") }
            out.append(contentsOf: data[start..<(start + size)])
            i = start + size + 2
        }
        return out
    }
}

/// One TLS connection: owns the socket, the `SSL_CTX*` and the `SSL*`, and
/// frees them in deinit.
final class TLSConnection {
    private let fd: Int32
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    init(host: String, port: Int, caFile: String, timeoutSeconds: Int) throws {
        fd = try TLSConnection.connect(host: host, port: port, timeoutSeconds: timeoutSeconds)
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            close(fd)
            throw HTTPSClientError(code: "tls", message: "SSL_CTX_new: \(CryptoError.drainOpenSSLErrors().joined(separator: "; "))")
        }
        context = ctx
        guard let s = SSL_new(ctx) else {
            SSL_CTX_free(ctx)
            close(fd)
            throw HTTPSClientError(code: "tls", message: "SSL_new failed")
        }
        ssl = s
        // From here on deinit frees everything.
        _ = lanyard_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
            throw HTTPSClientError(code: "tls", message: "cannot load the CA file \(caFile)")
        }
        SSL_set_verify(s, SSL_VERIFY_PEER, nil)
        let param = SSL_get0_param(s)
        var address = in6_addr()
        if inet_pton(AF_INET, host, &address) == 1 || inet_pton(AF_INET6, host, &address) == 1 {
            guard X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 else { throw HTTPSClientError(code: "tls", message: "bad IP \(host)") }
        } else {
            guard SSL_set1_host(s, host) == 1 else { throw HTTPSClientError(code: "tls", message: "bad host name \(host)") }
            _ = lanyard_SSL_set_tlsext_host_name(s, host)
        }
        SSL_set_fd(s, fd)
        guard SSL_connect(s) == 1 else {
            let verify = SSL_get_verify_result(s)
            let reason = verify != X509_V_OK ? String(cString: X509_verify_cert_error_string(verify)) : CryptoError.drainOpenSSLErrors().joined(separator: "; ")
            throw HTTPSClientError(code: "tls", message: "TLS handshake with \(host):\(port) failed: \(reason)")
        }
    }

    deinit {
        SSL_shutdown(ssl)
        SSL_free(ssl)
        SSL_CTX_free(context)
        close(fd)
        CryptoError.clearOpenSSLErrors()
    }

    private static func connect(host: String, port: Int, timeoutSeconds: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else { throw HTTPSClientError(code: "connect", message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return fd }
            lastError = String(cString: strerror(errno))
            close(fd)
        }
        throw HTTPSClientError(code: "connect", message: "cannot connect to \(host):\(port): \(lastError)")
    }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + sent, Int32(min($0.count - sent, Int(Int32.max)))) }
            guard n > 0 else { throw HTTPSClientError(code: "io", message: "TLS write failed") }
            sent += Int(n)
        }
    }

    /// Reads until the server closes the connection.
    func readAll(limit: Int) throws -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                data.append(contentsOf: buffer[0..<Int(n)])
                guard data.count <= limit else { throw HTTPSClientError(code: "protocol", message: "response larger than \(limit) bytes") }
                continue
            }
            let error = SSL_get_error(ssl, n)
            // A clean close_notify or (as many servers do) a plain TCP close after the response.
            if error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL || error == SSL_ERROR_SSL { 
                CryptoError.clearOpenSSLErrors()
                if data.isEmpty { throw HTTPSClientError(code: "io", message: "the server closed the connection without an answer") }
                return data
            }
            throw HTTPSClientError(code: "io", message: "TLS read failed (\(error))")
        }
    }
}

/// `{"error": {"code", "message"}}`, the body of every refusal.
struct AdminErrorBody: Decodable {
    var error: WireError
}

/// The HTTPS side of the admin API for `lanyardctl`: `POST /v1/{op}` with a bearer token.
package struct HTTPSAdminClient: Sendable {
    package var client: HTTPSClient
    /// Sent as `Authorization: Bearer`; never logged.
    package var token: String

    package init(client: HTTPSClient, token: String) {
        self.client = client
        self.token = token
    }

    package func call<P: Encodable, R: Decodable>(_ op: AdminOperation, _ params: P, as: R.Type) throws -> R {
        let response = try client.post("/v1/\(op.rawValue)", body: WireCodec.encode(params), headers: [("Authorization", "Bearer \(token)")])
        if response.status != 200 {
            if let body = try? WireCodec.decode(AdminErrorBody.self, from: response.body, limit: 1 << 20) { throw body.error }
            throw HTTPSClientError(code: "protocol", message: "HTTP \(response.status) without a coded error")
        }
        return try WireCodec.decode(R.self, from: response.body, limit: HTTPSClient.maxResponseBytes)
    }
}
