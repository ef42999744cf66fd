#if canImport(Glibc)
import Glibc
#endif

/// A detached pthread running `body` once. The agent keeps its few
/// blocking waits (signals, hooks) on threads of its own rather than on
/// libdispatch, whose first worker thread arms a timer that wakes the
/// process every second for good (EventLoopExecutor).
package enum PlainThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    package static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            fatalError("pthread_create(\(name)) failed: \(rc)")
        }
        pthread_detach(thread)
    }
}
