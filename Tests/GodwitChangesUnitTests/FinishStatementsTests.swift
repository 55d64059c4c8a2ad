import Foundation
import Testing

@testable import GodwitChanges

/// The finish job reads its part of `change_records.statements` as the contract spells it,
/// and ignores the parts of other commands.
@Suite("A change's statements, as its finish job reads them")
struct FinishStatementsTests {
    @Test func readsTheFinishJobsPartAndIgnoresTheRest() throws {
        let json = #"""
            {"table": "\"public\".\"media\"", "key": "\"id\"",
             "disagrees": "NOT (caption IS NOT DISTINCT FROM (title) OR title IS NOT DISTINCT FROM (caption))",
             "indexes": [{"name": "media_caption_idx", "create": "CREATE INDEX CONCURRENTLY media_caption_idx ON t (caption)"}],
             "uniques": [{"name": "media_slug_key", "create": "CREATE UNIQUE INDEX CONCURRENTLY media_slug_key ON t (slug)",
                          "attach": "ALTER TABLE t ADD CONSTRAINT media_slug_key UNIQUE USING INDEX media_slug_key"}],
             "validate": ["ALTER TABLE t VALIDATE CONSTRAINT c"],
             "complete": ["DROP TRIGGER x ON t"], "abort": [], "migration": "ALTER TABLE ...", "dropped": ["title"]}
            """#
        let statements = try JSONDecoder().decode(FinishStatements.self, from: Data(json.utf8))
        #expect(statements.table == #""public"."media""#)
        #expect(statements.key == #""id""#)
        #expect(statements.indexes.map(\.name) == ["media_caption_idx"])
        #expect(statements.uniques.first?.attach.hasSuffix("USING INDEX media_slug_key") == true)
        #expect(statements.validate == ["ALTER TABLE t VALIDATE CONSTRAINT c"])
    }

    @Test func listsLeftOutAreEmptyButTheTableKeyAndDisagreesAreRequired() throws {
        let bare = try JSONDecoder().decode(
            FinishStatements.self, from: Data(#"{"table": "t", "key": "k", "disagrees": "false"}"#.utf8))
        #expect(
            bare == FinishStatements(table: "t", key: "k", disagrees: "false", indexes: [], uniques: [], validate: []))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(FinishStatements.self, from: Data(#"{"table": "t", "key": "k"}"#.utf8))
        }
    }

    @Test func aFailureIsOneLine() {
        #expect(ChangeJob.Run.oneLine("key (a\nb)\r\tc") == "key (a b)  c")
    }
}
