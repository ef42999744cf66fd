#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The local admin transport: one newline-terminated JSON request and one
/// newline-terminated JSON response per connection on a Unix socket. The
/// socket's file mode and the peer's uid (SO_PEERCRED) decide who may call.
package enum UnixSocket {
    /// Requests above this are refused before parsing.
    package static let maxRequestBytes = 1 << 20
    package static let maxResponseBytes = 64 << 20

    package static func makeAddress(_ path: String) throws(FileError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw FileError(path: path, message: "socket path is too long")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    /// Reads until a newline or end of stream; nil when over `limit`.
    package static func readLine(_ fd: Int32, limit: Int) -> [UInt8]? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return data }
            if let nl = buffer[0..<n].firstIndex(of: 0x0A) {
                data.append(contentsOf: buffer[0..<nl])
                return data
            }
            data.append(contentsOf: buffer[0..<n])
            if data.count > limit { return nil }
        }
    }

    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}

/// The `lanyardctl` side of the admin API.
package struct AdminClient: Sendable {
    package var socketPath: String

    package init(socketPath: String) { self.socketPath = socketPath }

    /// Sends one request; a controller-side refusal comes back as `WireError`.
    package func call<P: Encodable, R: Decodable>(_ op: AdminOperation, _ params: P, as: R.Type) throws -> R {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FileError.errno(socketPath, "socket") }
        defer { close(fd) }
        var addr = try UnixSocket.makeAddress(socketPath)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw FileError.errno(socketPath, "cannot reach the controller's admin socket (is `lanyard-controller run` up?)")
        }
        var request = WireCodec.encode(AdminRequest(op, params))
        request.append(0x0A)
        guard UnixSocket.writeAll(fd, request) else { throw FileError.errno(socketPath, "send") }
        shutdown(fd, Int32(SHUT_WR))
        guard let line = UnixSocket.readLine(fd, limit: UnixSocket.maxResponseBytes), !line.isEmpty else {
            throw WireError(.internal, "the controller closed the connection without an answer")
        }
        let response = try WireCodec.decode(AdminResponse.self, from: line, limit: UnixSocket.maxResponseBytes)
        if let error = response.error { throw error }
        guard response.ok, let result = response.result else { throw WireError(.internal, "empty answer") }
        return try WireCodec.decode(R.self, from: Array(result), limit: UnixSocket.maxResponseBytes)
    }
}
