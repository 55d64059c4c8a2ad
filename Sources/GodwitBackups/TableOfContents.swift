/// A dump's table of contents, as `pg_restore --list` prints it.
///
/// An entry line is `<dump id>; <catalog oid> <oid> <type> <schema> <name> <owner>`, such as
/// `215; 1259 16390 TABLE public media postgres`; the type can be several words
/// (`TABLE DATA`), and lines starting with `;` are comments.
struct TableOfContents: Sendable {
    /// Every entry line, from the dump id on.
    var entries: [String]
    var isCustomFormat: Bool

    init(listing: String) {
        let lines = listing.split(separator: "\n").map(String.init)
        entries = lines.filter { !$0.hasPrefix(";") && !$0.isEmpty }
        isCustomFormat = lines.contains { $0.hasPrefix(";") && $0.contains("Format: CUSTOM") }
    }

    /// An entry's text after the dump id and the two oids: `TABLE DATA public media postgres`.
    static func description(of entry: String) -> Substring? {
        guard let semicolon = entry.firstIndex(of: ";") else { return nil }
        let words = entry[entry.index(after: semicolon)...].split(separator: " ", maxSplits: 2)
        return words.count == 3 ? words[2] : nil
    }

    /// The entries whose data pg_restore reads from the archive: table data and large objects.
    var dataBlocks: Int {
        entries.count { entry in
            guard let description = Self.description(of: entry) else { return false }
            return description.hasPrefix("TABLE DATA ") || description.hasPrefix("BLOBS ") || description == "BLOBS"
        }
    }

    /// The entry of schema `public`, present when the dump says something about it (an owner
    /// other than `pg_database_owner`, or, from some pg_dump versions, `CREATE SCHEMA public`).
    var publicSchemaEntry: String? {
        entries.first { entry in
            guard let description = Self.description(of: entry) else { return false }
            let words = description.split(separator: " ")
            return words.count <= 4 && words.starts(with: ["SCHEMA", "-", "public"])
        }
    }

    /// The tables, types, functions and views, as `TABLE public media`.
    var objects: [String] {
        entries.compactMap { entry in
            guard let description = Self.description(of: entry) else { return nil }
            let words = description.split(separator: " ")
            guard let kind = words.first, kind == "TABLE" || kind == "TYPE" || kind == "FUNCTION" || kind == "VIEW",
                words.count >= 2, words[1] != "DATA"
            else { return nil }
            return words.dropLast().joined(separator: " ")
        }
    }
}
