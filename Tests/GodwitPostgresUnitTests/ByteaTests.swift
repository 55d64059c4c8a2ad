import GodwitPostgres
import Testing

@Suite("bytea text format")
struct ByteaTests {
    @Test(arguments: [[], [0], [0xde, 0xad, 0xbe, 0xef], Array(0...255)] as [[UInt8]])
    func roundTrip(bytes: [UInt8]) {
        #expect(PostgresBytea.decode(PostgresBytea.encode(bytes)) == bytes)
    }

    @Test(arguments: ["", "x00", #"\x0"#, #"\xzz"#])
    func rejectsMalformed(text: String) {
        #expect(PostgresBytea.decode(text) == nil)
    }
}
