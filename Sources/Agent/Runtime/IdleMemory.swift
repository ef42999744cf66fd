import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Gives back what start-up and a TLS handshake left resident, once the agent
/// goes idle (docs/benchmarks.md §12.5).
///
/// Most of a freshly connected agent's resident set is not its data but
/// read-only file pages touched once: the Swift runtime's and
/// FoundationEssentials' code in the binary, its relocation tables, and
/// libcrypto's and libssl's code for configuration, key loading and the
/// handshake (the kernel maps 64 KiB around every page fault, "fault-around",
/// so each function touched costs up to 16 pages). They stay mapped and count
/// in VmRSS/RssFile although nothing touches them again until the next
/// connection. `release()` unmaps them: for a read-only private file mapping
/// without a single copied-on-write page, MADV_DONTNEED only drops the
/// page-table entries; the contents come back from the file (the page cache)
/// on the next touch, byte for byte the same. Nothing is made writable,
/// executable or unrandomised; the pages stay in the page cache, clean and
/// reclaimable, like the parts of the binary never touched.
///
/// Left alone, always: writable mappings (.data, .bss, heap, stacks; in the
/// agent's binary also .rodata, which Swift objects mark writable), any
/// mapping with an anonymous or swapped page (RELRO after relocation: its
/// pages hold the relocated pointers, which the file does not), locked
/// mappings, and anything that is not a file.
package enum IdleMemory {
    /// Trims malloc, then drops the resident pages of read-only file
    /// mappings. Run it as the last thing before a long sleep
    /// (`EventLoopExecutor.whenIdle`): whatever runs after it is paged back in.
    /// Returns the kilobytes it unmapped.
    @discardableResult
    package static func release() -> Int {
        let mappings = readAll("/proc/self/smaps").map(droppable(smaps:)) ?? []
        Allocator.trim()
        var released = 0
        for mapping in mappings
        where madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), mapping.end - mapping.start, MADV_DONTNEED) == 0 {
            released += mapping.residentKB
        }
        return released
    }

    struct Mapping: Equatable {
        var start: Int
        var end: Int
        var residentKB: Int
    }

    /// The mappings of `smaps` (the text of /proc/PID/smaps) that `release()`
    /// may drop: private, not writable, backed by a file (inode ≠ 0), not
    /// locked, with no anonymous and no swapped page, and something resident.
    static func droppable(smaps: [UInt8]) -> [Mapping] {
        var result: [Mapping] = []
        var current: Mapping?
        var eligible = false
        var anonymousKB: Int?, swapKB: Int?, locked = false
        func finish() {
            // Both counts must have been read and be zero.
            if let mapping = current, eligible, anonymousKB == 0, swapKB == 0, !locked, mapping.residentKB > 0 {
                result.append(mapping)
            }
            current = nil
        }
        for line in smaps.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.last != UInt8(ascii: ":"), let dash = first.firstIndex(of: UInt8(ascii: "-")) {
                // A mapping's first line: "start-end perms offset dev inode [path]".
                finish()
                guard fields.count >= 5,
                      let start = Int(String(decoding: first[..<dash], as: UTF8.self), radix: 16),
                      let end = Int(String(decoding: first[(dash + 1)...], as: UTF8.self), radix: 16), end > start
                else { continue }
                let perms = Array(fields[1])
                eligible = perms.count == 4 && perms[0] == UInt8(ascii: "r") && perms[1] == UInt8(ascii: "-")
                    && perms[3] == UInt8(ascii: "p") && Array(fields[4]) != [UInt8(ascii: "0")]
                current = Mapping(start: start, end: end, residentKB: 0)
                anonymousKB = nil; swapKB = nil; locked = false
                continue
            }
            guard current != nil else { continue }
            let value = fields.count > 1 ? Int(String(decoding: fields[1], as: UTF8.self)) : nil
            switch String(decoding: first, as: UTF8.self) {
            case "Rss:": current?.residentKB = value ?? 0
            // An unreadable count stays nil: the mapping is left alone.
            case "Anonymous:": anonymousKB = value
            case "Swap:": swapKB = value
            case "Locked:": if value != 0 { locked = true }
            case "VmFlags:": if fields.dropFirst().contains(where: { Array($0) == Array("lo".utf8) }) { locked = true }
            default: break
            }
        }
        finish()
        return result
    }

    private static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n == 0 ? data : nil }
            data.append(contentsOf: chunk[..<n])
        }
    }
}
