import Foundation

/// Quotes an SQL identifier: `my "table"` becomes `"my ""table"""`.
public func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// Quotes an SQL string literal, for the rare statement that cannot take parameters
/// (`SET`, DDL defaults). Prefer parameters everywhere else.
public func quoteLiteral(_ value: String) -> String {
    "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
}

/// A dollar-quoted literal of `body` whose tag does not occur in it.
public func dollarQuote(_ body: String) -> String {
    var tag = "godwit"
    var counter = 0
    while body.contains("$\(tag)$") {
        counter += 1
        tag = "godwit\(counter)"
    }
    return "$\(tag)$\(body)$\(tag)$"
}
