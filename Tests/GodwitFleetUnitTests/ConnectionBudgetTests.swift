import GodwitFleet
import Synchronization
import Testing

/// The fleet worker's connection budget: never more handed out than it holds, waiters served
/// in order, a cancelled wait taking nothing.
@Suite("Connection budget")
struct ConnectionBudgetTests {
    @Test func handsOutNoMoreThanItHoldsAndServesWaitersInOrder() async throws {
        let budget = ConnectionBudget(total: 8)
        try await budget.acquire(3)
        try await budget.acquire(3)
        #expect(budget.available == 2)
        let order = Order()
        // A request of 3 waits; a later request of 1 that would fit waits behind it.
        let large = Task {
            try await budget.acquire(3)
            order.append("large")
        }
        try await waitUntil { budget.waiting(1) }
        let small = Task {
            try await budget.acquire(1)
            order.append("small")
        }
        try await waitUntil { budget.waiting(2) }
        #expect(order.names.isEmpty && budget.available == 2)
        budget.release(3)
        try await large.value
        try await small.value
        #expect(order.names == ["large", "small"])
        #expect(budget.available == 1)
        budget.release(3)
        budget.release(3)
        budget.release(1)
        #expect(budget.available == 8)
    }

    @Test func aCancelledWaitTakesNothingAndLetsTheNextOneThrough() async throws {
        let budget = ConnectionBudget(total: 4)
        try await budget.acquire(3)
        let blocked = Task { try await budget.acquire(4) }
        try await waitUntil { budget.waiting(1) }
        let next = Task { try await budget.acquire(1) }
        try await waitUntil { budget.waiting(2) }
        blocked.cancel()
        await #expect(throws: CancellationError.self) { try await blocked.value }
        try await next.value
        #expect(budget.available == 0)
        budget.release(4)
        #expect(budget.available == 4)
    }

    /// The order in which waiters were served.
    final class Order: Sendable {
        private let state = Mutex<[String]>([])
        func append(_ name: String) { state.withLock { $0.append(name) } }
        var names: [String] { state.withLock { $0 } }
    }

    /// Polls a condition that another task makes true (no fixed sleep stands in for it).
    private func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
        #expect(condition())
    }
}
