import Foundation

/// The rows and status of one statement, copied out of libpq's result before it is freed.
///
/// Values are in PostgreSQL's text format; the accessors on `PostgresRow` decode the common types.
public struct QueryResult: Sendable {
    public var columns: [String]
    public var rows: [PostgresRow]
    /// The command tag, such as `INSERT 0 1` or `CREATE INDEX`.
    public var commandTag: String
    /// Rows affected by INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH or COPY.
    public var affectedRows: Int?

    public init(columns: [String], rows: [PostgresRow], commandTag: String, affectedRows: Int?) {
        self.columns = columns
        self.rows = rows
        self.commandTag = commandTag
        self.affectedRows = affectedRows
    }

    /// The first row, or nil when there is none.
    public var first: PostgresRow? { rows.first }
}

/// One row of a `QueryResult`, in text format.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public init(columns: [String], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    public subscript(index: Int) -> String? { values[index] }

    public subscript(name: String) -> String? {
        guard let index = columns.firstIndex(of: name) else { return nil }
        return values[index]
    }

    private func required(_ column: String) throws -> String {
        guard let index = columns.firstIndex(of: column) else {
            throw PostgresError(code: .client, message: "no column \"\(column)\" in the result")
        }
        guard let value = values[index] else {
            throw PostgresError(code: .client, message: "column \"\(column)\" is NULL")
        }
        return value
    }

    public func string(_ column: String) throws -> String { try required(column) }

    public func int(_ column: String) throws -> Int {
        let text = try required(column)
        guard let value = Int(text) else {
            throw PostgresError(code: .client, message: "column \"\(column)\" is not an integer: \(text)")
        }
        return value
    }

    public func int64(_ column: String) throws -> Int64 { Int64(try int(column)) }

    public func bool(_ column: String) throws -> Bool {
        let text = try required(column)
        return text == "t" || text == "true"
    }

    public func double(_ column: String) throws -> Double {
        let text = try required(column)
        guard let value = Double(text) else {
            throw PostgresError(code: .client, message: "column \"\(column)\" is not a number: \(text)")
        }
        return value
    }

    /// A `bytea` column in the server's default `hex` output format.
    public func bytes(_ column: String) throws -> [UInt8] {
        let text = try required(column)
        guard let decoded = PostgresBytea.decode(text) else {
            throw PostgresError(code: .client, message: "column \"\(column)\" is not bytea in hex format")
        }
        return decoded
    }
}

/// Text encoding of `bytea` values (the `hex` format, `\x0a1b...`).
public enum PostgresBytea {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](#"\x"#.utf8)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0
        else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity((utf8.count - 2) / 2)
        var i = 2
        while i < utf8.count {
            guard let high = nibble(utf8[i]), let low = nibble(utf8[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}

/// A value that can be sent as a query parameter in PostgreSQL's text format.
public protocol PostgresParameter: Sendable {
    /// The text form of the value; nil sends SQL NULL.
    var postgresText: String? { get }
}

extension String: PostgresParameter { public var postgresText: String? { self } }
extension Substring: PostgresParameter { public var postgresText: String? { String(self) } }
extension Int: PostgresParameter { public var postgresText: String? { String(self) } }
extension Int64: PostgresParameter { public var postgresText: String? { String(self) } }
extension Int32: PostgresParameter { public var postgresText: String? { String(self) } }
extension Double: PostgresParameter { public var postgresText: String? { String(self) } }
extension Bool: PostgresParameter { public var postgresText: String? { self ? "t" : "f" } }
extension Optional: PostgresParameter where Wrapped: PostgresParameter {
    public var postgresText: String? { self?.postgresText }
}

/// A `bytea` parameter.
public struct ByteaParameter: PostgresParameter {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresText: String? { PostgresBytea.encode(bytes) }
}

extension Sequence<UInt8> {
    /// Lowercase hexadecimal, two digits a byte (checksums, digests).
    public var hexEncoded: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Text form of one-dimensional arrays, for passing a list as one parameter
/// (`unnest($1::bigint[])`, `= ANY($1::text[])`).
public enum PostgresArray {
    /// `{"a","b\"c",NULL}`: every element quoted, `"` and `\` escaped, nil as NULL.
    public static func literal(_ elements: [String?]) -> String {
        var out = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { out += "," }
            guard let element else {
                out += "NULL"
                continue
            }
            out += "\""
            for character in element.unicodeScalars {
                if character == "\"" || character == "\\" { out += "\\" }
                out.unicodeScalars.append(character)
            }
            out += "\""
        }
        return out + "}"
    }

    public static func literal(_ elements: [String]) -> String { literal(elements.map(Optional.some)) }
}

/// What the server made of a statement it parsed without running it (`Connection.describe`).
public struct PreparedStatementDescription: Sendable, Equatable {
    /// The type OIDs the server inferred for `$1`, `$2`, ...
    public var parameterTypes: [UInt32]
    /// The names of the columns it would return (none for an UPDATE without RETURNING).
    public var columns: [String]
}
