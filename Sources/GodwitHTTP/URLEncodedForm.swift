import GodwitPostgres

/// `application/x-www-form-urlencoded` text, a form body or a query string, parsed strictly and
/// without ever trapping.
///
/// Foundation's `URLComponents.percentEncodedQuery` traps on bad percent-encoding, so one request
/// with `%zz` in its body used to stop the whole process. Here anything a browser would not send
/// is malformed (the caller answers 400): a raw space, `"`, `#`, `<`, `>`, a control or non-ASCII
/// byte, a `%` not followed by two hex digits, bytes that do not decode to UTF-8, a NUL, an empty
/// name, a name given twice, more than `maximumFields` fields.
enum URLEncodedForm {
    static let maximumFields = 64

    static func parse(_ text: String) throws(MalformedRequest) -> [String: String] {
        try parse(Array(text.utf8))
    }

    static func parse(_ bytes: [UInt8]) throws(MalformedRequest) -> [String: String] {
        var fields: [String: String] = [:]
        for piece in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard fields.count < maximumFields else { throw MalformedRequest("more than \(maximumFields) fields") }
            let equals = piece.firstIndex(of: UInt8(ascii: "="))
            let name = try decode(piece[..<(equals ?? piece.endIndex)])
            var value = ""
            if let equals { value = try decode(piece[piece.index(after: equals)...]) }
            guard !name.isEmpty else { throw MalformedRequest("a field without a name") }
            guard fields[name] == nil else { throw MalformedRequest("the field \"\(name.prefix(40))\" is given twice") }
            fields[name] = value
        }
        return fields
    }

    /// One name or value: `+` is a space, `%XX` a byte; the bytes must be UTF-8 with no NUL.
    static func decode(_ bytes: ArraySlice<UInt8>) throws(MalformedRequest) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "+"):
                out.append(0x20)
            case UInt8(ascii: "%"):
                guard bytes.endIndex - index >= 3, let high = Hex.value(ofDigit: bytes[index + 1]),
                    let low = Hex.value(ofDigit: bytes[index + 2])
                else { throw MalformedRequest("a % that is not followed by two hex digits") }
                out.append(high << 4 | low)
                index += 2
            case _ where allowedRaw(byte):
                out.append(byte)
            default:
                throw MalformedRequest("a character that must be percent-encoded (byte \(byte))")
            }
            index += 1
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw MalformedRequest("text that is not UTF-8")
        }
        guard !out.contains(0) else { throw MalformedRequest("a NUL character") }
        return text
    }

    /// Printable ASCII except the space and `"`, `#`, `<`, `>`, which a browser always encodes.
    private static func allowedRaw(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "#")
            && byte != UInt8(ascii: "<") && byte != UInt8(ascii: ">")
    }
}

/// A request whose form, query string or cookies cannot be read; answered with 400 and `reason`.
struct MalformedRequest: Error, CustomStringConvertible, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}
