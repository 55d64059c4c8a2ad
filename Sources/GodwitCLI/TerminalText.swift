/// Text on its way to a terminal or a log, with every character that could control the
/// terminal shown as a visible escape instead.
///
/// Job names, errors and everything else read from the database reach stdout, stderr and log
/// lines; a job named `x\u{1B}]52;c;...\u{07}` would otherwise set the clipboard of whoever
/// runs `godwit job list`, and one with `\u{1B}[2K\r` would rewrite the line before it. Escaped
/// are the C0 controls (but tab, and newlines where the text is made of lines), DEL, the C1
/// controls and the Unicode bidirectional formatting characters, which reorder what is shown.
///
/// The escape is JSON's, `\u001B`, so that JSON passes through unchanged in meaning: JSON text
/// holds these characters raw only inside strings (the C0 ones never), where `\u001B` stands
/// for the same character.
enum TerminalText {
    /// `text` with its control characters escaped. With `keepingNewlines`, `\n` and `\r\n` stay
    /// as they are (output made of lines); without, they are escaped too (a log line stays one
    /// line, whatever a job's name holds).
    static func escaped(_ text: String, keepingNewlines: Bool) -> String {
        let scalars = text.unicodeScalars
        guard scalars.contains(where: needsEscape) else { return text }
        var result = String.UnicodeScalarView()
        var index = scalars.startIndex
        while index != scalars.endIndex {
            let scalar = scalars[index]
            let next = scalars.index(after: index)
            let isLineEnd =
                scalar == "\n" || (scalar == "\r" && next != scalars.endIndex && scalars[next] == "\n")
            if needsEscape(scalar), !(keepingNewlines && isLineEnd) {
                result.append(contentsOf: escape(scalar).unicodeScalars)
            } else {
                result.append(scalar)
            }
            index = next
        }
        return String(result)
    }

    /// Whether a character is escaped (newlines included; `escaped` may keep them).
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09: false
        case 0x00...0x1F, 0x7F...0x9F: true
        // Arabic letter mark, left-to-right and right-to-left marks, embeddings and overrides,
        // isolates.
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    private static func escape(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
