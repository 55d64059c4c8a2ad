internal import CLibPQ
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Lets another thread interrupt what a connection's owner thread is waiting for.
///
/// A task's cancellation handler runs on whatever thread cancelled the task. It must not
/// touch the `PGconn`, which belongs to the owner thread, so it only records the request here
/// and writes to an eventfd. The owner thread polls that eventfd beside the server socket,
/// wakes, and then sends the server a cancel request itself (for a query) or stops waiting
/// (for notifications). Operations are numbered so that a late cancel of one finished
/// operation cannot cancel the next.
final class CancelSignal: Sendable {
    private struct State {
        var operation: UInt64 = 0
        var cancelled = false
    }

    private let state = Mutex(State())
    /// The eventfd the owner thread polls; nonblocking, closed in deinit.
    let fd: Int32

    init() {
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Starts a new operation; any earlier cancel request is forgotten.
    func begin() -> UInt64 {
        drain()
        return state.withLock {
            $0.operation &+= 1
            $0.cancelled = false
            return $0.operation
        }
    }

    /// Requests cancellation of `operation` if it is still the current one.
    func cancel(_ operation: UInt64) {
        let wake = state.withLock { state -> Bool in
            guard state.operation == operation else { return false }
            state.cancelled = true
            return true
        }
        if wake {
            var one: UInt64 = 1
            _ = write(fd, &one, MemoryLayout<UInt64>.size)
        }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Empties the eventfd so the next poll blocks again.
    func drain() {
        var value: UInt64 = 0
        _ = read(fd, &value, MemoryLayout<UInt64>.size)
    }
}
