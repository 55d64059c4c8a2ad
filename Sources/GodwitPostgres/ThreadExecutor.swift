import Foundation
import Synchronization

/// A serial executor that runs every job on one dedicated OS thread.
///
/// libpq calls block. Swift's cooperative pool has as many threads as cores (two on our
/// machines), so one slow query run there would stall every other task in the process.
/// A `Connection` actor uses one of these as its executor: all of its isolated code, and so
/// every libpq call on its `PGconn`, runs on the connection's own thread, and the handle
/// never needs a lock because it is never touched from anywhere else.
final class ThreadExecutor: SerialExecutor {
    private enum Item {
        case job(UnownedJob)
        case stop
    }

    private let queue = Mutex<[Item]>([])
    private let available = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        thread.start()
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

    private func runLoop() {
        while true {
            available.wait()
            let item = queue.withLock { $0.removeFirst() }
            switch item {
            case .job(let job):
                job.runSynchronously(on: asUnownedSerialExecutor())
            case .stop:
                return
            }
        }
    }
}
