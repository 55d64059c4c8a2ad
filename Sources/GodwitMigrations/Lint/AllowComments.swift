import Foundation

/// `-- godwit:allow RULE reason` comments: a person has looked at a finding and accepts it.
///
/// An allow comment stands on its own line among the comment lines directly above a
/// statement (no blank line between) and accepts that one rule for that one statement.
/// Every allow comment in a file is checked, wherever it is: one without a reason, or naming
/// a rule that does not exist, is an error naming the file and line, so that a typo never
/// silently accepts nothing.
struct AllowComment: Sendable, Equatable {
    var rule: LintRule
    var reason: String
    var line: Int

    static let marker = "godwit:allow"

    /// Every allow comment of a file, by line, or an error naming `path:line`.
    static func parse(_ text: String, path: String) throws -> [Int: AllowComment] {
        var found: [Int: AllowComment] = [:]
        for (offset, rawLine) in lines(text).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("--") else { continue }
            let body = line.drop { $0 == "-" }.trimmingCharacters(in: .whitespaces)
            guard body.hasPrefix(marker) else { continue }
            let rest = body.dropFirst(marker.count)
            guard rest.isEmpty || rest.first == " " || rest.first == "\t" else { continue }
            let words = rest.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            guard let id = words.first.map(String.init) else {
                throw MigrationError(
                    .invalidSource,
                    "\(path):\(offset + 1): `-- godwit:allow` needs a rule and a reason: -- godwit:allow RULE why it is safe here"
                )
            }
            guard let rule = LintRule(id: id) else {
                throw MigrationError(
                    .invalidSource,
                    "\(path):\(offset + 1): `-- godwit:allow` names unknown rule `\(id)` (known: \(LintRule.allCases.map(\.id).joined(separator: ", ")))"
                )
            }
            let reason = words.count > 1 ? words[1].trimmingCharacters(in: .whitespaces) : ""
            guard !reason.isEmpty else {
                throw MigrationError(
                    .invalidSource,
                    "\(path):\(offset + 1): `-- godwit:allow \(id)` needs a reason after the rule: say why it is safe here"
                )
            }
            found[offset + 1] = AllowComment(rule: rule, reason: reason, line: offset + 1)
        }
        return found
    }

    /// The allow comments that apply to a statement starting on `line`: those among the
    /// unbroken run of comment lines directly above it.
    static func applying(to line: Int, in lines: [Substring], allows: [Int: AllowComment]) -> [AllowComment] {
        var applying: [AllowComment] = []
        var current = line - 1
        while current >= 1, current <= lines.count,
            lines[current - 1].trimmingCharacters(in: .whitespaces).hasPrefix("--")
        {
            if let allow = allows[current] { applying.append(allow) }
            current -= 1
        }
        return applying
    }

    /// The lines of `text`, with `\n`, `\r\n` and `\r` all ending a line as the splitter counts them.
    static func lines(_ text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    }
}
