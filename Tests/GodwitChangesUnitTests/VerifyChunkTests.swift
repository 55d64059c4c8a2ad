import Testing

@testable import GodwitChanges

/// How the verification's chunks are steered towards `chunkTarget` (250 ms).
@Suite("The verification's chunk size")
struct VerifyChunkTests {
    typealias Run = ChangeJob.Run

    @Test func aFastChunkGrowsInProportionAtMostEightfold() {
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(50)) == 25_000)
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(1)) == 40_000)
        #expect(Run.nextChunk(after: 5000, took: .zero) == 40_000)
    }

    @Test func aBlockChunkGrowsAtMostTwofold() {
        #expect(Run.nextChunk(after: 50, took: .milliseconds(1), growth: 2) == 100)
        #expect(Run.nextChunk(after: 50, took: .milliseconds(400), growth: 2) == 31)
    }

    @Test func aSlowChunkShrinksAtMostByHalf() {
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(400)) == 3125)
        #expect(Run.nextChunk(after: 5000, took: .seconds(10)) == 2500)
        #expect(Run.nextChunk(after: 1, took: .seconds(10)) == 1)
    }

    @Test func aChunkNearTheTargetStays() {
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(250)) == 5000)
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(220)) == 5000)
        #expect(Run.nextChunk(after: 5000, took: .milliseconds(300)) == 5000)
    }

    @Test func itNeverPassesTheLargest() {
        #expect(Run.nextChunk(after: Run.maxChunk, took: .milliseconds(1)) == Run.maxChunk)
        #expect(Run.nextChunk(after: Run.maxChunk / 2, took: .milliseconds(1)) == Run.maxChunk)
    }

    @Test func aMillionRowsFromAFiveThousandRowStartTakeFewChunks() {
        // At 35 ms a 200,000 rows (a streamed keyset chunk on this machine, quiet).
        var chunk = 5000
        var left = 1_000_000
        var chunks = 0
        while left > 0 {
            let read = min(chunk, left)
            left -= read
            chunks += 1
            chunk = Run.nextChunk(after: chunk, took: .microseconds(read * 35 / 200))
        }
        #expect(chunks <= 5, "\(chunks) chunks")
    }
}
