/// Why an applied migration's stored checksum differs from its file's, when the difference is
/// only in line endings, a byte-order mark, trailing whitespace or the final newline.
///
/// The ledger keeps a checksum, not the text that was applied. Without that text, the file's
/// variants (CRLF and LF line ends, with and without a BOM, without trailing whitespace, with
/// and without a final newline) are hashed, as sqlx would with and without the config's
/// `ignored-chars`: a variant with the stored checksum is what was applied. With the applied
/// text (`appliedText`), the two are compared line by line instead, and any other change is a
/// change of content.
public struct ChecksumDrift: Sendable, Equatable {
    /// The differences found, in words, one a line (`the applied file had CRLF line ends`).
    public var differences: [String]

    /// A variant of the file whose checksum is `stored`, found by hashing, or nil when none is.
    public static func explain(stored: [UInt8], file bytes: [UInt8], ignoredChars: Set<Unicode.Scalar>)
        -> ChecksumDrift?
    {
        let text = String(decoding: bytes, as: UTF8.self)
        let bom = "\u{FEFF}"
        let hasBOM = text.hasPrefix(bom)
        let body = hasBOM ? String(text.dropFirst()) : text
        let crlf = body.contains("\r\n")
        let lf = body.replacingOccurrences(of: "\r\n", with: "\n")
        let trailingLines = Self.linesWithTrailingWhitespace(lf)
        for lineEnds in [crlf ? "\r\n" : "\n", crlf ? "\n" : "\r\n"] {
            for withBOM in [hasBOM, !hasBOM] {
                for strip in trailingLines.isEmpty ? [false] : [false, true] {
                    for finalNewline in [0, 1, -1] {
                        var lines = lf
                        if strip { lines = Self.strippingTrailingWhitespace(lines) }
                        if finalNewline == 1 { lines += "\n" }
                        if finalNewline == -1 {
                            guard lines.hasSuffix("\n") else { continue }
                            lines.removeLast()
                        }
                        let candidate = (withBOM ? bom : "") + lines.replacingOccurrences(of: "\n", with: lineEnds)
                        let candidateBytes = Array(candidate.utf8)
                        let matches =
                            Migration.checksum(of: candidateBytes) == stored
                            || (!ignoredChars.isEmpty
                                && Migration.checksum(of: candidateBytes, ignoring: ignoredChars) == stored)
                        guard matches else { continue }
                        var differences: [String] = []
                        // The file itself, hashed raw: only ignored-chars (set since) differ.
                        if candidateBytes == bytes {
                            differences.append(
                                "the file is unchanged: its stored checksum was computed from its raw bytes, before sqlx.toml's ignored-chars were set"
                            )
                        }
                        if (lineEnds == "\r\n") != crlf {
                            differences.append(
                                "the applied file had \(lineEnds == "\r\n" ? "CRLF" : "LF") line ends; the file now has \(crlf ? "CRLF" : "LF")"
                            )
                        }
                        if withBOM != hasBOM {
                            differences.append(
                                withBOM
                                    ? "the applied file began with a byte-order mark; the file has none"
                                    : "the file now begins with a byte-order mark, which the applied file did not have")
                        }
                        if strip {
                            let list = trailingLines.map(String.init).joined(separator: ", ")
                            differences.append(
                                "the file now has trailing whitespace on line\(trailingLines.count == 1 ? "" : "s") \(list)"
                            )
                        }
                        if finalNewline == 1 {
                            differences.append("the applied file ended with a newline; the file does not")
                        }
                        if finalNewline == -1 {
                            differences.append("the file now ends with a newline; the applied file did not")
                        }
                        return ChecksumDrift(differences: differences)
                    }
                }
            }
        }
        return nil
    }

    /// Compares the text that was applied with the file: whitespace-only (line ends, BOM,
    /// trailing whitespace, final newlines) gives the differences; anything else gives nil and
    /// the line diff in `contentDiff`.
    public static func compare(applied: [UInt8], file: [UInt8]) -> (drift: ChecksumDrift?, contentDiff: [String]) {
        let old = normalizedLines(applied)
        let new = normalizedLines(file)
        if old == new {
            var differences: [String] = []
            let oldText = String(decoding: applied, as: UTF8.self)
            let newText = String(decoding: file, as: UTF8.self)
            if oldText.contains("\r\n") != newText.contains("\r\n") {
                differences.append(
                    "the applied file had \(oldText.contains("\r\n") ? "CRLF" : "LF") line ends; the file now has \(newText.contains("\r\n") ? "CRLF" : "LF")"
                )
            }
            if oldText.hasPrefix("\u{FEFF}") != newText.hasPrefix("\u{FEFF}") {
                differences.append(
                    oldText.hasPrefix("\u{FEFF}")
                        ? "the applied file began with a byte-order mark; the file has none"
                        : "the file now begins with a byte-order mark, which the applied file did not have")
            }
            let oldRaw = rawLines(oldText)
            let newRaw = rawLines(newText)
            let changed = (0..<min(oldRaw.count, newRaw.count)).filter { oldRaw[$0] != newRaw[$0] }.map { $0 + 1 }
            if !changed.isEmpty {
                differences.append(
                    "trailing whitespace differs on line\(changed.count == 1 ? "" : "s") \(changed.map(String.init).joined(separator: ", "))"
                )
            }
            if oldRaw.count != newRaw.count {
                differences.append("the files end with a different number of blank lines")
            }
            if differences.isEmpty { differences.append("the files differ only in whitespace") }
            return (ChecksumDrift(differences: differences), [])
        }
        return (nil, lineDiff(old, new))
    }

    // MARK: Text helpers

    /// Lines without BOM, line-end style, trailing whitespace or trailing blank lines.
    static func normalizedLines(_ bytes: [UInt8]) -> [String] {
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false
        )
        .map { line -> String in
            var line = String(line)
            while line.last == " " || line.last == "\t" || line.last == "\r" { line.removeLast() }
            return line
        }
        while lines.last == "" { lines.removeLast() }
        return lines
    }

    private static func rawLines(_ text: String) -> [String] {
        var text = text
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false
        )
        .map(String.init)
        while lines.last == "" { lines.removeLast() }
        return lines
    }

    private static func linesWithTrailingWhitespace(_ lf: String) -> [Int] {
        lf.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .filter { $0.element.last == " " || $0.element.last == "\t" }.map { $0.offset + 1 }
    }

    private static func strippingTrailingWhitespace(_ lf: String) -> String {
        lf.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var line = String(line)
            while line.last == " " || line.last == "\t" { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }

    /// A line diff (`-3: old`, `+3: new`, numbered in the file each side comes from), from the
    /// longest common subsequence of the lines.
    static func lineDiff(_ old: [String], _ new: [String]) -> [String] {
        let n = old.count
        let m = new.count
        var lcs = Array(repeating: Array(repeating: 0, count: m + 1), count: n + 1)
        if n > 0 && m > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    lcs[i][j] = old[i] == new[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
                }
            }
        }
        var out: [String] = []
        var i = 0
        var j = 0
        while i < n || j < m {
            if i < n, j < m, old[i] == new[j] {
                i += 1
                j += 1
            } else if i < n, j == m || lcs[i + 1][j] >= lcs[i][j + 1] {
                out.append("-\(i + 1): \(old[i])")
                i += 1
            } else {
                out.append("+\(j + 1): \(new[j])")
                j += 1
            }
        }
        return out
    }
}
