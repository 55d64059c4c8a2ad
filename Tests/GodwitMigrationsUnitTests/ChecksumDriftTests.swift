import Crypto
import Foundation
import GodwitMigrations
import GodwitTestSupport
import Testing

/// The pure part of repair: which variant of a file has the stored checksum.
@Suite("Checksum drift")
struct ChecksumDriftTests {
    static let lf = Array("SELECT 1;\nSELECT 2;\n".utf8)

    @Test func aLineEndingChangeIsExplainedAndAContentChangeIsNot() {
        let stored = Array(SHA384.hash(data: Self.lf))
        let crlf = Array("SELECT 1;\r\nSELECT 2;\r\n".utf8)
        #expect(
            ChecksumDrift.explain(stored: stored, file: crlf, ignoredChars: [])?.differences == [
                "the applied file had LF line ends; the file now has CRLF"
            ])
        #expect(
            ChecksumDrift.explain(stored: stored, file: Array("SELECT 1;\nSELECT 3;\n".utf8), ignoredChars: []) == nil)
    }

    @Test func comparingTheAppliedTextGivesALineDiffForContent() {
        let changed = ChecksumDrift.compare(applied: Self.lf, file: Array("SELECT 1;\nSELECT 3;\nSELECT 4;\n".utf8))
        #expect(changed.drift == nil)
        #expect(changed.contentDiff == ["-2: SELECT 2;", "+2: SELECT 3;", "+3: SELECT 4;"])
        let whitespace = ChecksumDrift.compare(applied: Self.lf, file: Array("\u{FEFF}SELECT 1;  \r\nSELECT 2;".utf8))
        #expect(whitespace.contentDiff.isEmpty)
        #expect(whitespace.drift?.differences.count == 3)
    }
}
