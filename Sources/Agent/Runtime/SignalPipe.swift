#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM / SIGINT without libdispatch: the handler only writes the
/// signal's number to a pipe (async-signal-safe); a thread blocked in
/// `read()` names it to `onSignal`. Nothing wakes until a signal comes.
/// One per process (a signal's disposition is process-wide): the agent's
/// `main` installs it.
package enum SignalPipe {
    /// Written by the signal handler, which cannot capture context.
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    package static func watch(_ signals: [(Int32, String)], onSignal: @escaping @Sendable (String) -> Void) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("signal pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        writeEnd = fds[1]
        let names = Dictionary(uniqueKeysWithValues: signals.map { (UInt8(truncatingIfNeeded: $0.0), $0.1) })
        let readEnd = fds[0]
        PlainThread.start(name: "signals") {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1, let name = names[byte] { onSignal(name) }
                if n == 0 || (n < 0 && errno != EINTR) { return }
            }
        }
        for (number, _) in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(SignalPipe.writeEnd, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }
}
