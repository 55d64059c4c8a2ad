import Synchronization

/// A fleet worker's connection budget: at most `total` connections held at once, across every
/// database, handed out first come, first served.
///
/// A holder takes the connections it may open before it opens any, and gives them back only
/// once every one of them is closed and its backend gone (`SessionOptions.waitsForBackendExit`),
/// so that the number of the process's sessions on the servers never exceeds `total`, not
/// even for the moment between one session's close and the next one's open.
public final class ConnectionBudget: Sendable {
    public let total: Int

    private struct Waiter {
        var id: UInt64
        var count: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var free: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(total: Int) {
        self.total = total
        state = Mutex(State(free: total))
    }

    /// Connections not held now.
    public var available: Int { state.withLock { $0.free } }

    /// Whether exactly `count` requests wait now (for tests and logs).
    public func waiting(_ count: Int) -> Bool { state.withLock { $0.waiters.count == count } }

    /// Waits until `count` connections are free and takes them. Waiters are served in order:
    /// a large request is not overtaken by later small ones. Throws `CancellationError` when the
    /// task is cancelled while it waits (nothing is then held).
    public func acquire(_ count: Int) async throws {
        precondition(count >= 1 && count <= total, "a request of \(count) connections can never fit \(total)")
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.waiters.isEmpty && state.free >= count {
                        state.free -= count
                        return .success(())
                    }
                    state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let (removed, granted) = state.withLock { state -> (Waiter?, [Waiter]) in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return (nil, []) }
                let removed = state.waiters.remove(at: index)
                // The head may have been waiting behind this request only.
                return (removed, Self.grant(&state))
            }
            removed?.continuation.resume(throwing: CancellationError())
            for waiter in granted { waiter.continuation.resume() }
        }
    }

    /// Gives back `count` connections, all closed.
    public func release(_ count: Int) {
        let granted = state.withLock { state -> [Waiter] in
            state.free += count
            precondition(state.free <= total, "more connections given back than taken")
            return Self.grant(&state)
        }
        for waiter in granted { waiter.continuation.resume() }
    }

    /// Takes the waiters at the head of the line that fit now.
    private static func grant(_ state: inout State) -> [Waiter] {
        var granted: [Waiter] = []
        while let first = state.waiters.first, first.count <= state.free {
            state.free -= first.count
            granted.append(state.waiters.removeFirst())
        }
        return granted
    }

    /// Runs `body` holding `count` connections, given back however it ends.
    public func withConnections<T: Sendable>(
        _ count: Int, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async throws -> T {
        try await acquire(count)
        defer { release(count) }
        return try await body()
    }
}
