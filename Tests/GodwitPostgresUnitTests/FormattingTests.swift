import GodwitPostgres
import Testing

/// The formatters every module shares, without a database.
@Suite("Shared formatters")
struct FormattingTests {
    @Test func hexEncodesTwoLowerCaseDigitsAByteAndReadsEitherCase() {
        #expect(Hex.encode([0x00, 0x0F, 0xA0, 0xFF]) == "000fa0ff")
        #expect(Hex.encode([]) == "")
        let digits = Array("09afAF".utf8)
        #expect(digits.map { Hex.value(ofDigit: $0) } == [0, 9, 10, 15, 10, 15])
        #expect(Hex.value(ofDigit: UInt8(ascii: "g")) == nil)
        #expect(Hex.value(ofDigit: UInt8(ascii: "/")) == nil)
        let all = (0...255).map(UInt8.init)
        let encoded = Array(Hex.encode(all).utf8)
        let decoded = stride(from: 0, to: encoded.count, by: 2).map {
            Hex.value(ofDigit: encoded[$0])! << 4 | Hex.value(ofDigit: encoded[$0 + 1])!
        }
        #expect(decoded == all)
    }

    @Test(
        arguments: [
            (0, "0 bytes"), (10_239, "10239 bytes"), (10_240, "10 kB"), (10_700, "10 kB"), (139_264, "136 kB"),
            (1_258_291, "1.2 MB"),
            (3_145_728, "3.0 MB"), (3_650_722_202, "3.4 GB"), (5 << 50, "5120 TB"),
        ] as [(Int64, String)])
    func sizesReadAsPgSizePrettyDoes(bytes: Int64, text: String) {
        #expect(ByteSize.description(bytes) == text)
    }
}
