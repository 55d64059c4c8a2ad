import Foundation

/// The small pieces of SQL syntax a change file's directives are made of: identifiers as
/// PostgreSQL reads them, and the `=` that separates a column from its expression.
enum ChangeSyntax {
    /// `text` split at its first `=` outside quotes and parentheses, both sides trimmed; nil
    /// when there is none.
    static func splitAtEquals(_ text: String) -> (left: String, right: String)? {
        var depth = 0
        var quote: Character?
        for index in text.indices {
            let character = text[index]
            if let open = quote {
                if character == open { quote = nil }
                continue
            }
            switch character {
            case "\"", "'": quote = character
            case "(": depth += 1
            case ")": depth -= 1
            case "=" where depth == 0:
                let left = text[..<index].trimmingCharacters(in: .whitespaces)
                let right = text[text.index(after: index)...].trimmingCharacters(in: .whitespaces)
                return (left, right)
            default: break
            }
        }
        return nil
    }

    /// The identifier `text` starts with (folded to lower case unless double-quoted, where `""`
    /// stands for `"`), and the rest, trimmed; nil when `text` does not start with one.
    static func leadingIdentifier(_ text: String) -> (name: String, rest: String)? {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard let first = text.first else { return nil }
        if first == "\"" {
            var name = ""
            var index = text.index(after: text.startIndex)
            while index < text.endIndex {
                if text[index] == "\"" {
                    let next = text.index(after: index)
                    if next < text.endIndex, text[next] == "\"" {
                        name.append("\"")
                        index = text.index(after: next)
                        continue
                    }
                    guard !name.isEmpty else { return nil }
                    return (name, text[next...].trimmingCharacters(in: .whitespaces))
                }
                name.append(text[index])
                index = text.index(after: index)
            }
            return nil
        }
        guard first.isLetter || first == "_" else { return nil }
        let end = text.firstIndex { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == "$") } ?? text.endIndex
        return (text[..<end].lowercased(), text[end...].trimmingCharacters(in: .whitespaces))
    }

    /// A comma-separated list of identifiers, each alone between its commas; nil otherwise.
    static func identifierList(_ text: String) -> [String]? {
        var names: [String] = []
        var rest = text
        while true {
            guard let (name, after) = leadingIdentifier(rest) else { return nil }
            names.append(name)
            if after.isEmpty { return names }
            guard after.hasPrefix(",") else { return nil }
            rest = String(after.dropFirst())
        }
    }

    /// `COLUMN REFERENCES TABLE (COLUMN)`, the table as written; nil otherwise.
    static func foreignKey(_ text: String) -> (column: String, table: String, referenced: String)? {
        guard let (column, rest) = leadingIdentifier(text),
            rest.lowercased().hasPrefix("references "),
            let open = rest.lastIndex(of: "("), rest.hasSuffix(")")
        else { return nil }
        let table = rest[rest.index(rest.startIndex, offsetBy: "references".count)..<open]
            .trimmingCharacters(in: .whitespaces)
        let inner = String(rest[rest.index(after: open)..<rest.index(before: rest.endIndex)])
        guard !table.isEmpty, let (referenced, after) = leadingIdentifier(inner), after.isEmpty else { return nil }
        return (column, table, referenced)
    }
}
