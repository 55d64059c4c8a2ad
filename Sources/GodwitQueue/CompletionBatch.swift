import Synchronization

/// Collects the successes of finished jobs so that one UPDATE records many of them.
///
/// While one write is in flight the next successes queue up behind it, so under load each
/// write carries many jobs (as group commit does) and at rest a single job is recorded at once.
final class CompletionBatch: Sendable {
    struct Entry: Sendable {
        var job: ClaimedJob
        var result: String?
    }

    private struct Pending {
        var entry: Entry
        var done: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var pending: [Pending] = []
        var flusher: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())

    /// Hands a success over to be recorded; returns whether the write found the lease still held.
    func submit(_ job: ClaimedJob, result: String?) async -> Bool {
        await withCheckedContinuation { done in
            let (flusher, closed) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
                if state.closed { return (nil, true) }
                state.pending.append(Pending(entry: Entry(job: job, result: result), done: done))
                defer { state.flusher = nil }
                return (state.flusher, false)
            }
            if closed { done.resume(returning: false) }
            flusher?.resume()
        }
    }

    /// Runs until cancelled, writing what has queued up with `write`, which returns the ids
    /// it recorded.
    func flushLoop(_ write: @Sendable ([Entry]) async -> Set<Int64>) async {
        while true {
            let batch = await next()
            if batch.isEmpty {
                if Task.isCancelled { break }
                continue
            }
            let recorded = await write(batch.map(\.entry))
            for pending in batch { pending.done.resume(returning: recorded.contains(pending.entry.job.id)) }
        }
        let rest = state.withLock { state -> [Pending] in
            state.closed = true
            defer { state.pending.removeAll() }
            return state.pending
        }
        if !rest.isEmpty {
            let recorded = await write(rest.map(\.entry))
            for pending in rest { pending.done.resume(returning: recorded.contains(pending.entry.job.id)) }
        }
    }

    private func next() async -> [Pending] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if !state.pending.isEmpty || Task.isCancelled { return true }
                    state.flusher = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
            return state.withLock { state in
                defer { state.pending.removeAll() }
                return state.pending
            }
        } onCancel: {
            let flusher = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.flusher = nil }
                return state.flusher
            }
            flusher?.resume()
        }
    }
}
