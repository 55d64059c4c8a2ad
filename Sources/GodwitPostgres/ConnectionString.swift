internal import CLibPQ
import Foundation

/// Helpers for connection strings: both URLs (`postgres://...`) and `key=value` conninfo.
///
/// libpq parses them, so every form libpq accepts (and PG* variables, `.pgpass` and service
/// files) works the same way here as in psql.
///
/// Nothing here ever returns or throws text that could hold a password: a string libpq cannot
/// parse is still redacted, by a lexical scan that finds what looks like a password (the
/// userinfo password of a URL, `password=` query parameters, the `password` setting of a
/// `key=value` string) without needing the string to be well formed.
public enum ConnectionString {
    /// What replaces a secret in anything printed.
    static let mask = "********"

    /// The parsed options of a connection string, or an error naming what is wrong
    /// (without repeating the string, or any part of it a password could be in).
    public static func options(_ conninfo: String) throws -> [String: String] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &errorMessage) else {
            defer { if let errorMessage { PQfreemem(errorMessage) } }
            let text = errorMessage.map { String(cString: $0) } ?? ""
            throw PostgresError(code: .client, message: parseErrorMessage(libpq: text, conninfo: conninfo))
        }
        defer { PQconninfoFree(parsed) }
        var result: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                result[String(cString: keyword)] = String(cString: value)
            }
            option += 1
        }
        return result
    }

    /// The password in a connection string, if it has one and libpq can parse the string.
    public static func password(in conninfo: String) -> String? {
        guard let password = (try? options(conninfo))?["password"], !password.isEmpty else { return nil }
        return password
    }

    /// Refuses a string that is not a PostgreSQL connection string, before libpq would take it
    /// for a database name (`not a url`, `mysql://...`) or fail to parse it.
    ///
    /// Accepts the empty string (libpq's defaults: PG* variables), `postgres://` and
    /// `postgresql://` URLs, and `key=value` settings that libpq can parse. The error is one
    /// line that names the scheme when there is one, and never repeats the string.
    public static func validate(_ conninfo: String) throws {
        if conninfo.allSatisfy(\.isWhitespace) { return }
        let expected = "expected a postgres:// or postgresql:// URL or key=value settings"
        if let scheme = scheme(of: conninfo) {
            guard conninfo.hasPrefix("postgres://") || conninfo.hasPrefix("postgresql://") else {
                let got: String
                if conninfo.first?.isWhitespace == true {
                    got = "whitespace before \(scheme.prefix(32))://"
                } else if ["postgres", "postgresql"].contains(scheme.lowercased()) {
                    got = "\(scheme):// (write the scheme in lowercase)"
                } else {
                    got = scheme.count <= 32 ? "a \(scheme):// URL" : "a URL"
                }
                throw PostgresError(
                    code: .client, message: "not a PostgreSQL connection string: \(expected), got \(got)")
            }
        } else if !conninfo.contains("=") {
            throw PostgresError(code: .client, message: "not a PostgreSQL connection string: \(expected)")
        }
        _ = try options(conninfo)
    }

    /// A form of the connection string that is safe to print: every password, and everything
    /// that looks like one, is replaced, even when libpq cannot parse the string.
    public static func redacted(_ conninfo: String) -> String {
        let bytes = Array(conninfo.utf8)
        let spans = SecretScanner.spans(in: bytes)
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var next = 0
        for span in spans {
            result += bytes[next..<span.lowerBound]
            result += mask.utf8
            next = span.upperBound
        }
        result += bytes[next...]
        var text = String(decoding: result, as: UTF8.self)
        // The scan finds every password libpq does; should it ever not, scrub libpq's too.
        if let password = password(in: conninfo) {
            let covered = spans.flatMap { SecretScanner.forms(of: bytes[$0]) }.flatMap { forms(of: $0) }
            if !covered.contains(where: { $0.contains(password) }) {
                text = scrub(text, secrets: Array(forms(of: password)))
            }
        }
        return text
    }

    /// Every string `scrub(_:conninfo:)` removes for `conninfo`, longest first: the password
    /// libpq parses, what the lexical scan finds, their percent-encoded, percent-decoded and
    /// unquoted forms, and (for a secret that holds `@`, `:`, `/`, `&`, quotes or whitespace,
    /// where libpq may split it and echo a piece as a host, port or setting) its pieces of three
    /// characters or more.
    ///
    /// Compute it once per connection string and pass it to `scrub(_:secrets:)` where many
    /// messages are scrubbed.
    public static func secrets(in conninfo: String) -> [String] {
        let bytes = Array(conninfo.utf8)
        var found = Set<String>()
        for span in SecretScanner.spans(in: bytes) {
            for form in SecretScanner.forms(of: bytes[span]) { found.formUnion(forms(of: form)) }
        }
        if let password = password(in: conninfo) { found.formUnion(forms(of: password)) }
        var all = found
        for secret in found { all.formUnion(SecretScanner.pieces(of: secret)) }
        all.remove("")
        return all.sorted { ($0.utf8.count, $0) > ($1.utf8.count, $1) }
    }

    /// `message` with every secret of `conninfo` (see `secrets(in:)`) replaced. Never throws,
    /// whatever the string; for an error message of any layer that may echo the string.
    public static func scrub(_ message: String, conninfo: String) -> String {
        scrub(message, secrets: secrets(in: conninfo))
    }

    /// `message` with every string of `secrets` replaced, longest first.
    public static func scrub(_ message: String, secrets: [String]) -> String {
        var result = message
        for secret in secrets.sorted(by: { $0.utf8.count > $1.utf8.count }) where !secret.isEmpty {
            if result.contains(secret) { result = result.replacingOccurrences(of: secret, with: mask) }
        }
        return result
    }

    // MARK: Internals

    /// `secret`, its percent-decoded form, and the percent-encoded forms a URL may carry
    /// (with upper- and lowercase hexadecimal digits).
    static func forms(of secret: String) -> Set<String> {
        var result: Set<String> = [secret]
        let decoded = SecretScanner.percentDecoded(Array(secret.utf8))
        result.insert(decoded)
        for plain in [secret, decoded] {
            for allowed in [CharacterSet.alphanumerics, .urlUserAllowed, .urlPasswordAllowed, .urlQueryAllowed] {
                guard let encoded = plain.addingPercentEncoding(withAllowedCharacters: allowed) else { continue }
                result.insert(encoded)
                result.insert(SecretScanner.lowercasingPercentEscapes(encoded))
            }
        }
        return result
    }

    /// The scheme of a URL-shaped string (`mysql` in `mysql://...`), ignoring leading whitespace.
    static func scheme(of conninfo: String) -> String? {
        let text = conninfo.drop(while: \.isWhitespace)
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound]
        guard let first = scheme.unicodeScalars.first, first.isASCIILetter,
            scheme.unicodeScalars.allSatisfy({
                $0.isASCIILetter || ("0"..."9").contains($0) || "+-.:".unicodeScalars.contains($0)
            })
        else { return nil }
        return String(scheme)
    }

    /// A one-line message for a string libpq cannot parse: the kind of problem, never the
    /// string. libpq's own messages quote the offending token, the whole URL, or a word that
    /// may be a piece of a password, so they are only ever classified, not shown.
    static func parseErrorMessage(libpq text: String, conninfo: String) -> String {
        let isURL = conninfo.hasPrefix("postgres://") || conninfo.hasPrefix("postgresql://")
        let prefix = isURL ? "invalid database URL" : "invalid connection string"
        let kinds: [(String, String)] = [
            (
                "invalid percent-encoded token",
                "a % is not followed by two hexadecimal digits (write a literal % as %25)"
            ),
            ("forbidden value %00", "it contains the percent-encoded NUL byte %00"),
            ("looking for matching \"]\"", "an IPv6 host address opened with [ is not closed with ]"),
            ("IPv6 host address may not be empty", "an IPv6 host address in [ ] is empty"),
            ("unexpected character", "an unexpected character follows the host (expected : or /)"),
            ("extra key/value separator", "a query parameter has a second = (write = inside a value as %3D)"),
            ("missing key/value separator", "a query parameter has no ="),
            ("invalid URI query parameter", "a query parameter is not a libpq connection setting"),
            ("invalid connection option", "a setting is not a libpq connection setting"),
            ("missing \"=\" after", "a word is not followed by = (quote a value with spaces: key='a value')"),
            ("unterminated quoted string", "a quoted value has no closing '"),
            ("definition of service", "the service it names is not defined in the service file"),
            ("service file", "the service file it refers to cannot be read"),
            ("out of memory", "out of memory while parsing it"),
        ]
        var kind = kinds.first { text.contains($0.0) }?.1 ?? "libpq cannot parse it"
        // An unknown setting's name helps, and is safe to show when nothing in the string
        // looks like a password at all.
        if text.contains("invalid URI query parameter") || text.contains("invalid connection option"),
            let name = text.split(separator: "\"", omittingEmptySubsequences: false).dropFirst().first,
            !name.isEmpty, name.count <= 64,
            name.unicodeScalars.allSatisfy({ $0.isASCIILetter || $0 == "_" || ("0"..."9").contains($0) }),
            SecretScanner.spans(in: Array(conninfo.utf8)).isEmpty
        {
            kind += ": \"\(name)\""
        }
        return "\(prefix): \(kind)"
    }
}

/// Finds what looks like a password in a connection string, well formed or not, by its shape
/// alone. It errs towards finding too much: a debug line with a host redacted is harmless, a
/// password in a log is not.
///
/// Three shapes, looked for everywhere in the string (so a URL inside a `dbname=` value, or a
/// `password=` inside a quoted value or a URL's path, is found too):
/// - the userinfo password of a URL, `scheme://user:PASSWORD@`, up to the *last* `@` (a
///   password may hold `@`, `:` and `/`; libpq stops at the first `@`, and shows the rest as
///   a host name);
/// - in a URL without `@`, a "port" that is not a number, which may be a password whose
///   `@host` is missing (`postgres://user:secret/db`);
/// - the value of any setting whose name (percent-decoded, in any case, quoted or not)
///   mentions a password or a secret: `password=`, `PASSWORD =`, `pass%77ord=`, `sslpassword=`,
///   `'passwd'=`. The value is `'...'` with `\` escapes (to the end of the string when not
///   closed), or bare: up to whitespace (and `&` in a URL), and on over the following words
///   that no `=` follows (`password=two words`: libpq complains about `words`).
enum SecretScanner {
    /// Byte ranges of `bytes` that hold secrets, sorted and not overlapping.
    static func spans(in bytes: [UInt8]) -> [Range<Int>] {
        var found: [Range<Int>] = []
        var first = 0
        while first < bytes.count, isSpace(bytes[first]) { first += 1 }
        let isURL = schemeEnd(bytes, from: first) != nil
        var index = 0
        while let separator = firstIndex(of: Array("://".utf8), in: bytes, index..<bytes.count) {
            // The string's own URL runs to its end; one inside a value, to the next blank or quote.
            let topLevel = isURL && schemeEnd(bytes, from: first) == separator
            var end = separator + 3
            if topLevel {
                end = bytes.count
            } else {
                while end < bytes.count, !isSpace(bytes[end]), bytes[end] != UInt8(ascii: "'") { end += 1 }
            }
            userinfoSpans(bytes, authority: separator + 3, end: end, into: &found)
            index = separator + 3
        }
        settingSpans(bytes, inURL: isURL, into: &found)
        return merged(found)
    }

    /// The strings a span stands for: as written, without the quotes of a `'...'` value, and
    /// with its `\` escapes resolved.
    static func forms(of span: ArraySlice<UInt8>) -> [String] {
        var inner = span
        if inner.first == UInt8(ascii: "'") {
            inner = inner.dropFirst()
            if inner.last == UInt8(ascii: "'") { inner = inner.dropLast() }
        }
        var unescaped: [UInt8] = []
        var index = inner.startIndex
        while index < inner.endIndex {
            if inner[index] == UInt8(ascii: "\\"), index + 1 < inner.endIndex { index += 1 }
            unescaped.append(inner[index])
            index += 1
        }
        return [
            String(decoding: span, as: UTF8.self), String(decoding: inner, as: UTF8.self),
            String(decoding: unescaped, as: UTF8.self),
        ]
    }

    /// The pieces of `secret` between the characters where libpq splits a string (`@`, `:`,
    /// `/`, `?`, `&`, `=`, `,`, brackets, quotes, `%`, whitespace), three characters or longer;
    /// none when the secret has no such character.
    static func pieces(of secret: String) -> [String] {
        let delimiters = Set("@:/?&=,;[]'\"\\% \t\n\r#".utf8)
        let bytes = Array(secret.utf8)
        guard bytes.contains(where: delimiters.contains) else { return [] }
        return bytes.split(whereSeparator: delimiters.contains)
            .filter { $0.count >= 3 }
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Decodes each valid `%XX`; leaves a malformed `%` as it is.
    static func percentDecoded(_ bytes: [UInt8]) -> String {
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = Hex.value(ofDigit: bytes[index + 1]), let low = Hex.value(ofDigit: bytes[index + 2])
            {
                result.append(high << 4 | low)
                index += 3
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    static func lowercasingPercentEscapes(_ text: String) -> String {
        var bytes = Array(text.utf8)
        var index = 0
        while index + 2 < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                for offset in 1...2 where (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(bytes[index + offset]) {
                    bytes[index + offset] += 32
                }
                index += 3
            } else {
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: The shapes

    /// The userinfo password of the URL whose authority starts at `authority`, or without an
    /// `@`, the non-numeric ports.
    static func userinfoSpans(_ bytes: [UInt8], authority: Int, end: Int, into found: inout [Range<Int>]) {
        guard authority < end else { return }
        if let at = bytes[authority..<end].lastIndex(of: UInt8(ascii: "@")) {
            if let colon = bytes[authority..<at].firstIndex(of: UInt8(ascii: ":")), colon + 1 < at {
                found.append(colon + 1..<at)
            }
            return
        }
        var hostEnd = authority
        while hostEnd < end, bytes[hostEnd] != UInt8(ascii: "/"), bytes[hostEnd] != UInt8(ascii: "?") { hostEnd += 1 }
        // host[:port], comma-separated; a colon inside [ ] is part of an IPv6 address, unless
        // the [ is never closed.
        let closed = bytes[authority..<hostEnd].contains(UInt8(ascii: "]"))
        var depth = 0
        var colon: Int?
        for index in authority...hostEnd {
            let byte = index < hostEnd ? bytes[index] : UInt8(ascii: ",")
            switch byte {
            case UInt8(ascii: "[") where closed: depth += 1
            case UInt8(ascii: "]") where closed: depth -= 1
            case UInt8(ascii: ":") where depth <= 0: colon = colon ?? index
            case UInt8(ascii: ",") where depth <= 0:
                if let colon, colon + 1 < index, !bytes[colon + 1..<index].allSatisfy(isDigit) {
                    found.append(colon + 1..<index)
                }
                colon = nil
            default: break
            }
        }
    }

    /// The value after every `=` whose name looks like a password.
    static func settingSpans(_ bytes: [UInt8], inURL: Bool, into found: inout [Range<Int>]) {
        let end = bytes.count
        for equals in bytes.indices where bytes[equals] == UInt8(ascii: "=") {
            var keyEnd = equals
            while keyEnd > 0, isSpace(bytes[keyEnd - 1]) { keyEnd -= 1 }
            var keyStart = keyEnd
            while keyStart > 0, isKeyByte(bytes[keyStart - 1]) { keyStart -= 1 }
            guard keyStart < keyEnd, isSecretKey(bytes[keyStart..<keyEnd]) else { continue }
            var index = equals + 1
            while index < end, isSpace(bytes[index]) { index += 1 }
            let valueStart = index
            if index < end, bytes[index] == UInt8(ascii: "'") {
                index += 1
                while index < end, bytes[index] != UInt8(ascii: "'") {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    index = min(index + 1, end)
                }
                index = min(index + 1, end)
            }
            // A bare value, or what sticks to a closing quote (`'a'b`).
            index = bareWordEnd(bytes, from: index, inURL: inURL)
            // Words after it belong to the password too, up to one that starts another libpq
            // setting: `password=two words` and `password=a&b=c` do not end at the blank or `&`.
            while true {
                var word = index
                while word < end, isSpace(bytes[word]) || (inURL && bytes[word] == UInt8(ascii: "&")) { word += 1 }
                guard word < end else { break }
                var nameEnd = word
                while nameEnd < end, !isSpace(bytes[nameEnd]), !(inURL && bytes[nameEnd] == UInt8(ascii: "&")),
                    bytes[nameEnd] != UInt8(ascii: "=")
                {
                    nameEnd += 1
                }
                var after = nameEnd
                while after < end, isSpace(bytes[after]) { after += 1 }
                if after < end, bytes[after] == UInt8(ascii: "="),
                    libpqKeywords.contains(percentDecoded(Array(bytes[word..<nameEnd])))
                {
                    break
                }
                index = max(bareWordEnd(bytes, from: word, inURL: inURL), word + 1)
            }
            if valueStart < index { found.append(valueStart..<index) }
        }
    }

    /// `password`, `PGPASSWORD`, `pass%77ord`, `'passwd'`, `sslpassword`: any name that
    /// mentions a password or a secret.
    static func isSecretKey(_ key: ArraySlice<UInt8>) -> Bool {
        let name = percentDecoded(Array(key)).lowercased()
        return name.contains("pass") || name.contains("pwd") || name.contains("secret")
    }

    // MARK: Helpers

    /// The names of libpq's connection settings (`host`, `dbname`, `sslmode`, ...), from the
    /// libpq in use.
    static let libpqKeywords: Set<String> = {
        guard let defaults = PQconndefaults() else { return [] }
        defer { PQconninfoFree(defaults) }
        var names: Set<String> = []
        var option = defaults
        while let keyword = option.pointee.keyword {
            names.insert(String(cString: keyword))
            option += 1
        }
        return names
    }()

    /// The end of a bare value: whitespace ends it, `\` escapes the next byte, and in a URL
    /// `&` ends it too.
    private static func bareWordEnd(_ bytes: [UInt8], from start: Int, inURL: Bool) -> Int {
        var index = start
        while index < bytes.count, !isSpace(bytes[index]), !(inURL && bytes[index] == UInt8(ascii: "&")) {
            if bytes[index] == UInt8(ascii: "\\") { index += 1 }
            index += 1
        }
        return min(index, bytes.count)
    }

    /// The index of `://` when `bytes` has a URL scheme (`postgres`, `jdbc:postgresql`) at `start`.
    private static func schemeEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard start < bytes.count, isASCIILetter(bytes[start]) else { return nil }
        var index = start
        while index < bytes.count,
            isASCIILetter(bytes[index]) || isDigit(bytes[index]) || Array("+-.:".utf8).contains(bytes[index])
        {
            if bytes[index] == UInt8(ascii: ":"), index + 2 < bytes.count,
                bytes[index + 1] == UInt8(ascii: "/"), bytes[index + 2] == UInt8(ascii: "/")
            {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func firstIndex(of needle: [UInt8], in bytes: [UInt8], _ range: Range<Int>) -> Int? {
        guard range.count >= needle.count else { return nil }
        for index in range.lowerBound...(range.upperBound - needle.count)
        where bytes[index..<index + needle.count].elementsEqual(needle) {
            return index
        }
        return nil
    }

    private static func merged(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }

    /// Bytes of a setting's name as someone may have written it: letters, digits, `_`, `-`,
    /// `.`, `%` escapes and quotes.
    private static func isKeyByte(_ byte: UInt8) -> Bool {
        isASCIILetter(byte) || isDigit(byte) || Array("_-.%'\"".utf8).contains(byte)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || (9...13).contains(byte)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        return text
    }
}
