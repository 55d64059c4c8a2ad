import Synchronization

/// The interruptions the worker has decided on for its running jobs, read by their handlers at
/// checkpoints: a pause or cancel seen in the heartbeat, a lost lease, or shutdown.
///
/// Kept per attempt (a job's id and the lease token of its claim): a worker may claim a job
/// again after its own rescue while the earlier attempt still runs, and each attempt must see
/// only what was decided about its own lease.
public final class JobSignals: Sendable {
    public init() {}

    /// One attempt of a job: its id and the lease token of the claim.
    struct Attempt: Hashable {
        var id: Int64
        var token: Int64
    }

    private struct State {
        var perAttempt: [Attempt: JobInterruption] = [:]
        var recorded: Set<Attempt> = []
        var shutdown = false
    }

    private let state = Mutex(State())

    func interruption(for job: ClaimedJob) -> JobInterruption? {
        state.withLock { state in
            if let own = state.perAttempt[Attempt(job)] { return own }
            return state.shutdown ? .shutdown : nil
        }
    }

    /// Sets (or with nil clears) the interruption of one attempt. A lost lease is never cleared.
    func set(_ interruption: JobInterruption?, for attempt: Attempt) {
        state.withLock { state in
            if state.perAttempt[attempt] == .leaseLost { return }
            state.perAttempt[attempt] = interruption
        }
    }

    /// Forgets what was decided about an attempt that ended.
    func forget(_ job: ClaimedJob) {
        state.withLock { state in
            state.perAttempt.removeValue(forKey: Attempt(job))
            state.recorded.remove(Attempt(job))
        }
    }

    /// The attempt's success is already recorded (in its own transaction).
    func markRecorded(_ job: ClaimedJob) { _ = state.withLock { $0.recorded.insert(Attempt(job)) } }

    func wasRecorded(_ job: ClaimedJob) -> Bool { state.withLock { $0.recorded.contains(Attempt(job)) } }

    func beginShutdown() { state.withLock { $0.shutdown = true } }

    var isShuttingDown: Bool { state.withLock { $0.shutdown } }
}

extension JobSignals.Attempt {
    init(_ job: ClaimedJob) { self.init(id: job.id, token: job.leaseToken) }
}

/// Wakes the worker's claim loop: a notification arrived, a slot freed up, or shutdown began.
/// Wake-ups while nobody waits are remembered (once), so none is lost. Public for loops like
/// it elsewhere (the fleet worker's scheduler); one waiter at a time.
public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Bool, Never>?
        var generation: UInt64 = 0
        /// The wait whose timeout (or cancellation) came before it started waiting.
        var expired: UInt64?
    }

    private let state = Mutex(State())

    public init() {}

    public func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// Returns at the next wake-up (true), or after `timeout` or when the task is cancelled
    /// (false).
    @discardableResult
    public func wait(timeout: Duration) async -> Bool {
        let generation = state.withLock { state -> UInt64? in
            if state.pending {
                state.pending = false
                return nil
            }
            state.generation &+= 1
            return state.generation
        }
        guard let generation else { return true }
        let timer = Task { [weak self] in
            do {
                try await Task.sleep(for: timeout)
                self?.expire(generation: generation)
            } catch {
                // Cancelled because the wait already ended.
            }
        }
        let woken = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool? in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    if state.expired == generation { return false }
                    state.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            self.expire(generation: generation)
        }
        timer.cancel()
        return woken
    }

    /// Ends wait `generation` without a wake-up: its timeout passed or its task was cancelled.
    private func expire(generation: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard state.generation == generation else { return nil }
            guard let waiter = state.waiter else {
                state.expired = generation
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: false)
    }
}
