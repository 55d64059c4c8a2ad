extension Array where Element: Sendable {
    /// `transform` of every element, at most `limit` at a time (at least one), each started as
    /// soon as an earlier one ends; the results in the elements' order.
    func concurrentMap<Result: Sendable>(
        atMost limit: Int, _ transform: @escaping @Sendable (Element) async -> Result
    ) async -> [Result] {
        var results = [Result?](repeating: nil, count: count)
        await withTaskGroup(of: (Int, Result).self) { group in
            var next = 0
            func startNext() {
                guard next < count else { return }
                let index = next
                let element = self[index]
                next += 1
                group.addTask { (index, await transform(element)) }
            }
            for _ in 0..<Swift.max(1, limit) { startNext() }
            while let (index, result) = await group.next() {
                results[index] = result
                startNext()
            }
        }
        return results.compactMap { $0 }
    }
}
