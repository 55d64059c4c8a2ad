import Foundation
import Synchronization

/// Every connection's thread in the process, so that it can end in order.
///
/// A connection's thread ends after the connection's deinit has closed it. Ended threads are
/// joined (`reapEnded`) by each new connection's thread as it starts, so a long-running worker
/// does not collect them; at exit, `finishAll` closes what is still open and joins every thread that
/// is ending.
enum ConnectionThreads {
    private struct Entry {
        weak var connection: Connection?
        let executor: ThreadExecutor
    }

    private static let entries = Mutex<[Int: Entry]>([:])
    private static let nextID = Atomic<Int>(0)

    /// A number for a connection about to be registered.
    static func nextRegistration() -> Int {
        nextID.add(1, ordering: .relaxed).newValue
    }

    /// Records a new connection and its thread under `id`.
    static func register(_ connection: Connection, id: Int, executor: ThreadExecutor) {
        entries.withLock { $0[id] = Entry(connection: connection, executor: executor) }
    }

    /// Joins the threads whose run loop has returned; none of them makes this wait for long.
    /// Each new connection thread calls it before its first job, so the joins never wait on
    /// the cooperative pool.
    static func reapEnded() {
        let ended = entries.withLock { entries -> [ThreadExecutor] in
            let ids = entries.filter { $0.value.executor.hasEnded }.map(\.key)
            return ids.compactMap { entries.removeValue(forKey: $0)?.executor }
        }
        for executor in ended { executor.join() }
    }

    /// Closes every connection still open and joins the threads of all the others (those
    /// whose deinit has run or is on its way). A connection still referenced keeps its thread,
    /// idle: closed, it makes no more libpq calls.
    ///
    /// `only` limits it to those registrations (for tests, which share the process with others).
    static func finishAll(only: Set<Int>? = nil) async {
        let snapshot = entries.withLock { entries in
            entries.filter { only?.contains($0.key) ?? true }
                .map { (id: $0.key, connection: $0.value.connection, executor: $0.value.executor) }
        }
        for entry in snapshot {
            if let connection = entry.connection {
                await connection.close()
                continue
            }
            // pthread_join blocks: off the cooperative pool, as every libpq call is.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    entry.executor.join()
                    continuation.resume()
                }
            }
            _ = entries.withLock { $0.removeValue(forKey: entry.id) }
        }
    }
}

extension Connection {
    /// Makes the process ready to exit: every connection closed, and every connection thread
    /// that is ending joined, its thread-local clean-up done. Call it last, before `exit()`, once
    /// the work is over.
    ///
    /// `exit()` runs the libraries' destructors (Kerberos/GSS among them, which libpq loads)
    /// while other threads go on; a connection thread that is still closing its session, or
    /// running its thread-local destructors, then meets torn-down state and the process aborts
    /// (`k5_mutex_lock: Assertion 'r == 0' failed`) after its work succeeded. Waits at most
    /// `timeout` (a statement that never returns must not keep the process from exiting);
    /// returns whether everything finished within it.
    @discardableResult
    public static func finishAll(within timeout: Duration = .seconds(15)) async -> Bool {
        let outcome = FirstOutcome()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            outcome.set(continuation)
            // Two racers, of which the first to finish answers; the loser is left to the exit.
            // (A task group would wait for a close stuck behind a statement that never ends.)
            Task {
                await ConnectionThreads.finishAll()
                outcome.resume(true)
            }
            Task {
                try? await Task.sleep(for: timeout)
                outcome.resume(false)
            }
        }
    }
}

/// A continuation resumed once, by whichever racer comes first.
private final class FirstOutcome: Sendable {
    private let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(_ value: Bool) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
