#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Shared

/// `state_dir/retired`: written by the `retire` command after every
/// credential and the agent state are erased. Its presence makes `run` exit
/// with status 4 at once, so a restart (by hand or by systemd) stays retired.
package enum RetiredMarker {
    package static func path(in directory: String) -> String { "\(directory)/retired" }

    package static func exists(in directory: String) -> Bool {
        access(path(in: directory), F_OK) == 0
    }

    /// Records when the device was retired (Unix seconds), for the operator.
    package static func write(in directory: String, at time: Date) throws(FileError) {
        try AtomicFile.write("retired at \(Int64(time.timeIntervalSince1970))\n", to: path(in: directory), mode: 0o600)
    }
}
