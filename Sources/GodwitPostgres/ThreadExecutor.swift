import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A serial executor that runs every job on one dedicated OS thread.
///
/// libpq calls block. Swift's cooperative pool has as many threads as cores (two on our
/// machines), so one slow query run there would stall every other task in the process.
/// A `Connection` actor uses one of these as its executor: all of its isolated code, and so
/// every libpq call on its `PGconn`, runs on the connection's own thread, and the handle
/// never needs a lock because it is never touched from anywhere else.
///
/// The thread is a joinable POSIX thread, not a detached one: a thread that ends runs its
/// thread-local clean-up (libpq's Kerberos/GSS state among it) after its last job, and a process
/// that exits meanwhile tears that state down under it (`k5_mutex_lock: Assertion 'r == 0'
/// failed`). `join()` waits for all of it; `Connection.finishAll()` joins every ending thread
/// before the process exits.
final class ThreadExecutor: SerialExecutor {
    private enum Item {
        case job(UnownedJob)
        case stop
    }

    private let queue = Mutex<[Item]>([])
    private let available = DispatchSemaphore(value: 0)
    /// The thread, until it is joined.
    private let thread = Mutex<pthread_t?>(nil)
    /// Set when the run loop has returned: the thread is ending, and `join()` will not wait long.
    private let ended = Atomic<Bool>(false)
    /// The thread's name, as `ps -L` and a debugger show it.
    private let name: String

    init(name: String) {
        self.name = name
        // The thread holds the executor until its run loop returns.
        let retained = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Glibc)
            var id = pthread_t()
        #else
            var id: pthread_t?
        #endif
        let result = pthread_create(
            &id, nil,
            { argument in
                guard let argument else { return nil }
                let executor = Unmanaged<ThreadExecutor>.fromOpaque(argument).takeRetainedValue()
                executor.runLoop()
                return nil
            }, retained)
        precondition(result == 0, "cannot start a connection thread: \(String(cString: strerror(result)))")
        #if canImport(Glibc)
            thread.withLock { $0 = id }
        #else
            thread.withLock { $0 = id.unsafelyUnwrapped }
        #endif
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.withLock { $0.append(.job(unowned)) }
        available.signal()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Ends the thread once the jobs already enqueued have run.
    func shutdown() {
        queue.withLock { $0.append(.stop) }
        available.signal()
    }

    /// Whether the run loop has returned (the thread is gone, or about to be).
    var hasEnded: Bool { ended.load(ordering: .acquiring) }

    /// Whether `join()` has returned: the thread is gone.
    var isJoined: Bool { thread.withLock { $0 == nil } }

    /// Blocks until the thread has ended, its thread-local clean-up included; call it after
    /// `shutdown()` (or once the owner's deinit, which shuts down, is on its way), never on the
    /// thread itself. Later calls return at once.
    func join() {
        guard let id = thread.withLock({ $0.take() }) else { return }
        _ = pthread_join(id, nil)
    }

    private func runLoop() {
        Thread.current.name = name
        // Before the first job (the connect): the threads of closed connections are joined
        // here, on this thread, never on the cooperative pool.
        ConnectionThreads.reapEnded()
        while true {
            available.wait()
            let item = queue.withLock { $0.removeFirst() }
            switch item {
            case .job(let job):
                job.runSynchronously(on: asUnownedSerialExecutor())
            case .stop:
                ended.store(true, ordering: .releasing)
                return
            }
        }
    }
}
