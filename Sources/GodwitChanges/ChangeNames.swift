/// The names of what a change creates, derived from the change and its table alone, so that
/// start, the worker, complete, abort and the folded migration agree on them without a lookup.
///
/// What stays after complete (indexes, unique, foreign-key and check constraints) is named as
/// PostgreSQL names it by default (`media_caption_idx`, `media_caption_key`,
/// `media_caption_fkey`), so a database built from the folded migration matches the live one.
/// What complete removes (the trigger, its function, the NOT NULL check) carries `godwit_` and
/// a hash of the change's name, so two changes never collide.
public struct ChangeNames: Sendable, Equatable {
    /// The change's name (its `-- name:` or the file's stem).
    public var change: String
    /// The table's own name, unqualified and unquoted (`media`).
    public var table: String

    public init(change: String, table: String) {
        self.change = change
        self.table = table
    }

    /// The sync trigger on the table, and its function (in the table's schema): one per change.
    public var trigger: String { temporary("sync") }

    /// The CHECK (column IS NOT NULL) that carries a `not-null` until complete sets NOT NULL.
    public func notNullCheck(_ column: String) -> String { temporary("nn_\(column)") }

    /// The index an `index` directive builds.
    public func index(_ columns: [String]) -> String { standard(columns, suffix: "idx") }

    /// The unique constraint (and the index it is built from) of a `unique` directive.
    public func unique(_ columns: [String]) -> String { standard(columns, suffix: "key") }

    /// The foreign key of a `foreign-key` directive.
    public func foreignKey(_ column: String) -> String { standard([column], suffix: "fkey") }

    /// The largest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes).
    static let maximumLength = 63

    /// `godwit_<what>_<change, shortened>_<hash>`: unique to the change however long its name.
    private func temporary(_ what: String) -> String {
        let hash = String(Self.fnv1a(change), radix: 16)
        let prefix = "godwit_\(what)_"
        let room = Self.maximumLength - prefix.utf8.count - hash.utf8.count - 1
        let slug = String(change.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
        return prefix + Self.truncated(slug, toBytes: max(room, 0)) + "_" + hash
    }

    /// `<table>_<columns>_<suffix>`, shortened as PostgreSQL shortens its default names: the
    /// longer of table and columns loses characters first.
    private func standard(_ columns: [String], suffix: String) -> String {
        var first = table
        var second = columns.joined(separator: "_")
        let room = Self.maximumLength - suffix.utf8.count - 2
        while first.utf8.count + second.utf8.count > room {
            if first.utf8.count > second.utf8.count { first.removeLast() } else { second.removeLast() }
        }
        return "\(first)_\(second)_\(suffix)"
    }

    private static func truncated(_ text: String, toBytes limit: Int) -> String {
        var result = text
        while result.utf8.count > limit { result.removeLast() }
        return result
    }

    /// FNV-1a, 32 bits: stable on every platform and release, unlike `Hasher`.
    static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }
}
