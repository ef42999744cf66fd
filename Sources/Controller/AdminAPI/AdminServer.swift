import Foundation
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// The local admin API on a Unix socket (mode 0660). A caller is authorised
/// by its uid (SO_PEERCRED): the controller's own uid, root, or one listed in
/// `admin_uids`. Every call, refused ones included, reaches the audit trail
/// through the handler or `onRefused`.
package final class AdminServer: @unchecked Sendable {
    // Only `listener` is shared between threads; it is set once before the
    // accept thread starts and closed once in `stop()`.
    private let path: String
    private let allowedUIDs: Set<UInt32>
    private let handler: @Sendable (AdminRequest, String) -> AdminResponse
    private let onRefused: @Sendable (String) -> Void
    private var listener: Int32 = -1
    private let log: Logger

    package init(path: String, allowedUIDs: [UInt32], log: Logger, onRefused: @escaping @Sendable (String) -> Void,
                 handler: @escaping @Sendable (AdminRequest, String) -> AdminResponse) {
        self.path = path
        self.allowedUIDs = Set(allowedUIDs + [getuid(), 0])
        self.handler = handler
        self.onRefused = onRefused
        self.log = log
    }

    package func start() throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            // Only ever remove a stale socket, never some other file.
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw FileError(path: path, message: "exists and is not a socket") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FileError.errno(path, "socket") }
        var addr = try UnixSocket.makeAddress(path)
        let old = umask(0o117)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0 else { close(fd); throw FileError.errno(path, "bind") }
        guard listen(fd, 64) == 0 else { close(fd); throw FileError.errno(path, "listen") }
        listener = fd
        let thread = Thread { [self] in acceptLoop(fd) }
        thread.name = "admin-api"
        thread.start()
        log.info("admin API listening", ["socket": path])
    }

    package func stop() {
        guard listener >= 0 else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        listener = -1
        unlink(path)
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let conn = accept(fd, nil, nil)
            if conn < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // listener closed
            }
            serve(conn)
        }
    }

    private func serve(_ conn: Int32) {
        // A large answer (findings or an export of a big register: tens of
        // MB of JSON) leaves glibc's heap grown; hand the freed pages back
        // once it is written and dropped.
        // So does an operation that walked the whole register (a campaign, a
        // bulk revocation or an event over a selector): its pages are freed, the
        // heap they grew is not, and a campaign runs for minutes after it.
        var largeAnswer = false
        var walkedRegister = false
        defer { if largeAnswer || walkedRegister { _ = glibcMallocTrim(0) } }
        defer { close(conn) }
        _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var cred = PeerCredentials()
        var len = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 else { return }
        let actor = AdminServer.actorName(uid: cred.uid)
        func respond(_ response: AdminResponse) {
            if response.ok, let result = response.result {
                // The envelope written by hand, the result's base64 a slice at a time: the same
                // line as WireCodec.encode(response) without two more copies of a large answer.
                largeAnswer = result.count > AdminServer.largeAnswerBytes
                guard UnixSocket.writeAll(conn, Array(#"{"ok":true,"result":""#.utf8)) else { return }
                var start = result.startIndex
                while start < result.endIndex {
                    let end = result.index(start, offsetBy: AdminServer.base64Slice, limitedBy: result.endIndex) ?? result.endIndex
                    guard UnixSocket.writeAll(conn, Array(result[start..<end].base64EncodedString().utf8)) else { return }
                    start = end
                }
                _ = UnixSocket.writeAll(conn, Array("\"}\n".utf8))
                return
            }
            var bytes = WireCodec.encode(response)
            bytes.append(0x0A)
            _ = UnixSocket.writeAll(conn, bytes)
            largeAnswer = bytes.count > AdminServer.largeAnswerBytes
        }
        guard allowedUIDs.contains(cred.uid) else {
            onRefused(actor)
            respond(AdminResponse(error: WireError(.unauthorized, "uid \(cred.uid) may not use the admin API")))
            return
        }
        guard let line = UnixSocket.readLine(conn, limit: UnixSocket.maxRequestBytes) else {
            respond(AdminResponse(error: WireError(.badRequest, "request larger than \(UnixSocket.maxRequestBytes) bytes")))
            return
        }
        do {
            let request = try WireCodec.decode(AdminRequest.self, from: line, limit: UnixSocket.maxRequestBytes)
            walkedRegister = AdminServer.walksRegister.contains(request.op)
            respond(handler(request, actor))
        } catch {
            respond(AdminResponse(error: error))
        }
    }

    static let largeAnswerBytes = 1 << 20
    /// Operations that select devices over the whole register (DeviceRegister.select).
    static let walksRegister: Set<AdminOperation> = [.campaignCreate, .deviceRevokeSelected, .eventPost]
    /// A multiple of 3 bytes, so the slices' base64 joins into the base64 of the whole.
    static let base64Slice = 3 << 16

    /// `uid:1000(alice)`: the uid decides, the name helps the auditor.
    static func actorName(uid: uid_t) -> String {
        guard let pw = getpwuid(uid), let name = pw.pointee.pw_name else { return "uid:\(uid)" }
        return "uid:\(uid)(\(String(cString: name)))"
    }
}

/// glibc's `malloc_trim` (<malloc.h>, which the Glibc module does not export).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

/// `struct ucred` from <sys/socket.h>, which Glibc only exports under _GNU_SOURCE.
struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
