import Foundation
import GodwitPostgres
import GodwitQueue
import Testing

/// The queue's typed values read and write the same text the database and the JSON output
/// always held.
@Suite("Typed values of the queue")
struct TypedValuesTests {
    @Test("A kind is its name: as JSON a bare string, and the kinds Godwit ships are spelled as the tables hold them")
    func kinds() throws {
        let encoded = try JSONEncoder().encode([JobKind.batchedParallel, JobKind("made-up")])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["batched_parallel","made-up"]"#)
        #expect(JobKind.shipped.map(\.rawValue) == ["noop", "sql", "batched", "batched_parallel", "migrate", "change"])
        #expect(try JSONDecoder().decode(JobKind.self, from: Data(#""sql""#.utf8)) == .sql)
    }

    @Test("The finished states are succeeded, failed and cancelled, one list")
    func finishedStates() {
        #expect(JobState.finished == [.succeeded, .failed, .cancelled])
        #expect(JobState.allCases.filter(\.isFinished) == [.succeeded, .failed, .cancelled])
    }

    @Test("A control column this build does not know is an error naming the job, never silently none")
    func unknownControl() throws {
        #expect(try JobControl(column: nil, job: 7) == nil)
        #expect(try JobControl(column: "pause", job: 7) == .pause)
        #expect(throws: PostgresError.self) { try JobControl(column: "halt", job: 7) }
        do {
            _ = try JobControl(column: "halt", job: 7)
        } catch let error as PostgresError {
            #expect(error.message.contains("job 7") && error.message.contains("halt"), "\(error)")
        }
    }

    @Test("Each outcome's metric label, as the worker's metrics have always named them")
    func outcomeLabels() {
        #expect(
            JobOutcome.Label.allCases.map(\.rawValue) == [
                "succeeded", "failed", "retry", "paused", "cancelled", "handed_back",
            ])
        #expect(JobOutcome.recorded(result: nil).label == .succeeded)
        #expect(JobOutcome.handBack.label == .handedBack)
        #expect(JobOutcome.retry(error: "x", delay: .seconds(1)).label == .retry)
    }

    @Test("Named SQLSTATEs are the server's codes; GW001 is Godwit's lease lost")
    func namedStates() {
        #expect(SQLState.lockNotAvailable.rawValue == "55P03")
        #expect(SQLState.queryCanceled.rawValue == "57014")
        #expect(SQLState.insufficientPrivilege.rawValue == "42501")
        #expect(SQLState.leaseLost.rawValue == "GW001")
        #expect(SQLState(rawValue: "55P03") == .lockNotAvailable)
        #expect("\(SQLState.uniqueViolation)" == "23505")
    }
}
