import Foundation
import Testing

@testable import Agent
import Shared

@Suite("IdleMemory: which mappings may be unmapped when idle")
struct IdleMemoryTests {
    /// One smaps entry; the counts not given are zero.
    func entry(_ header: String, rss: Int, anonymous: Int? = 0, swap: Int? = 0, locked: Int = 0, flags: String = "rd ex mr mw me sd") -> String {
        var text = "\(header)\nSize:               1024 kB\nRss:                \(rss) kB\nPss:                \(rss) kB\n"
        if let anonymous { text += "Anonymous:          \(anonymous) kB\n" }
        if let swap { text += "Swap:               \(swap) kB\n" }
        text += "Locked:             \(locked) kB\nVmFlags: \(flags)\n"
        return text
    }

    func droppable(_ entries: String...) -> [IdleMemory.Mapping] {
        IdleMemory.droppable(smaps: Array(entries.joined().utf8))
    }

    @Test("read-only private file mappings with nothing copied-on-write are dropped")
    func cleanFileMappings() {
        let found = droppable(
            entry("55d0a0000000-55d0a0c72000 r-xp 00000000 fe:00 16220873 /usr/bin/lanyard-agent", rss: 8024),
            entry("7f8dd0000000-7f8dd0100000 r--p 00000000 fe:00 42 /usr/lib/x86_64-linux-gnu/libssl.so.3", rss: 120))
        #expect(found == [IdleMemory.Mapping(start: 0x55d0a0000000, end: 0x55d0a0c72000, residentKB: 8024),
                          IdleMemory.Mapping(start: 0x7f8dd0000000, end: 0x7f8dd0100000, residentKB: 120)])
    }

    @Test("writable, shared, anonymous, relocated, swapped, locked and empty mappings are left alone")
    func leftAlone() {
        let found = droppable(
            entry("1000-2000 rw-p 00000000 fe:00 7 /usr/bin/lanyard-agent", rss: 4),                 // .data/.rodata
            entry("2000-3000 r--p 00001000 fe:00 7 /usr/bin/lanyard-agent", rss: 4, anonymous: 4),   // RELRO, relocated
            entry("3000-4000 r--s 00000000 fe:00 8 /some/shared-file", rss: 4),                      // shared
            entry("4000-5000 rw-p 00000000 00:00 0 [heap]", rss: 4, anonymous: 4),
            entry("5000-6000 r--p 00000000 00:00 0 ", rss: 4),                                      // no file
            entry("6000-7000 r-xp 00000000 fe:00 9 /lib/a.so", rss: 4, swap: 4),
            entry("7000-8000 r-xp 00000000 fe:00 9 /lib/b.so", rss: 4, locked: 4),
            entry("8000-9000 r-xp 00000000 fe:00 9 /lib/c.so", rss: 4, flags: "rd ex mr mw me lo"),
            entry("9000-a000 r-xp 00000000 fe:00 9 /lib/d.so", rss: 0),                              // nothing resident
            entry("a000-b000 r-xp 00000000 fe:00 9 /lib/e.so", rss: 4, anonymous: nil),             // count missing
            entry("b000-c000 ---p 00000000 fe:00 9 /lib/f.so", rss: 4))                              // guard
        #expect(found.isEmpty, "\(found)")
    }

    @Test("this process: its own executable's code is found, its heap and writable data are not; release() keeps it running")
    func liveProcess() throws {
        let smaps = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/proc/self/smaps")))
        let found = IdleMemory.droppable(smaps: smaps)
        #expect(!found.isEmpty)
        // Every mapping found is one the kernel lists as read-only and private.
        let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        for mapping in found {
            let start = String(mapping.start, radix: 16)
            let line = maps.split(separator: "\n").first { $0.hasPrefix(start + "-") }
            let perms = line.map { String($0.split(separator: " ")[1]) }
            #expect(perms?.hasPrefix("r-") == true && perms?.hasSuffix("p") == true, "\(String(describing: line))")
        }
        // Dropping them must not change what the process computes afterwards.
        let before = (1...10_000).reduce(0, &+)
        IdleMemory.release()
        #expect((1...10_000).reduce(0, &+) == before)
        #expect(try PrivateKey.generateP256().publicKey.spkiDER.count > 0)
    }
}
