import Foundation

/// CPU time and memory of a process, from /proc (Linux).
struct ProcessUsage: Sendable {
    var cpuSeconds: Double
    var rssKiB: Int

    /// nil when the process is gone or /proc is unreadable.
    static func sample(pid: Int32) -> ProcessUsage? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var rss = 0
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        {
            rss = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return ProcessUsage(cpuSeconds: (utime + stime) / ticks, rssKiB: rss)
    }

    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// Raises RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
@discardableResult
func raiseFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}

/// "2 cores, 24 GiB": stated with every figure.
func machineDescription() -> String {
    "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(Int((Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)).rounded())) GiB"
}
