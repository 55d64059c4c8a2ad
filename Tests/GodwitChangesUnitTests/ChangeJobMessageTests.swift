import Testing

@testable import GodwitChanges

/// What a finish job records of a failure is one line, whatever the server's message held.
@Suite("A change's finish job's messages")
struct ChangeJobMessageTests {
    @Test func aFailureIsOneLine() {
        #expect(ChangeJob.Run.oneLine("key (a\nb)\r\tc") == "key (a b)  c")
    }
}
