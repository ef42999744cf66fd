#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A file-system error with the path and errno text.
package struct FileError: Error, Sendable, CustomStringConvertible {
    package var path: String
    package var message: String
    package var description: String { "\(path): \(message)" }

    package init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    package static func errno(_ path: String, _ what: String) -> FileError {
        FileError(path: path, message: "\(what): \(String(cString: strerror(Glibc.errno)))")
    }
}

/// Durable, atomic file writes: temp file in the same directory, fsync,
/// rename(2), fsync the directory. A reader sees the old file or the new one,
/// never a torn one, even across a power loss.
package enum AtomicFile {
    package static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(FileError) {
        let tmp = "\(path).tmp-\(getpid())-\(Digest.hex(SecureRandom.bytes(4)))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .errno(tmp, "open") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // The mode given to open() is filtered by the umask; set it exactly.
        guard fchmod(fd, mode) == 0 else { close(fd); throw .errno(tmp, "fchmod") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                close(fd)
                throw .errno(tmp, "write")
            }
            written += n
        }
        guard fsync(fd) == 0 else { close(fd); throw .errno(tmp, "fsync") }
        close(fd)
        guard rename(tmp, path) == 0 else { throw .errno(path, "rename") }
        ok = true
        try syncDirectory(of: path)
    }

    package static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(FileError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }

    /// Writes only when the file does not exist yet (never overwrites).
    package static func create(_ text: String, at path: String, mode: mode_t = 0o600) throws(FileError) {
        guard access(path, F_OK) != 0 else { throw FileError(path: path, message: "already exists; refusing to overwrite") }
        try write(text, to: path, mode: mode)
    }

    package static func syncDirectory(of path: String) throws(FileError) {
        let dir = parentDirectory(of: path)
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .errno(dir, "open directory") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw .errno(dir, "fsync directory") }
    }

    /// `path` made absolute against the working directory.
    package static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let cwd = FileManager.default.currentDirectoryPath
        return path.hasPrefix("./") ? "\(cwd)/\(path.dropFirst(2))" : "\(cwd)/\(path)"
    }

    package static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    /// Reads a whole file, refusing anything larger than `limit` bytes.
    package static func read(_ path: String, limit: Int = 1 << 20) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno(path, "open") }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(path, "read")
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
            guard result.count <= limit else { throw FileError(path: path, message: "larger than \(limit) bytes") }
        }
        return result
    }

    package static func readText(_ path: String, limit: Int = 1 << 20) throws(FileError) -> String {
        let bytes = try read(path, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw FileError(path: path, message: "not UTF-8") }
        return text
    }

    /// Creates a directory (and parents) with the given mode; tightens the mode if it exists.
    package static func makePrivateDirectory(_ path: String, mode: mode_t = 0o700) throws(FileError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/\(part)"
            if mkdir(current, 0o755) != 0 && Glibc.errno != EEXIST { throw .errno(current, "mkdir") }
        }
        guard chmod(path, mode) == 0 else { throw .errno(path, "chmod") }
    }
}
