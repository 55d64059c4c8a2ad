/// The part of a change's `statements` (`change_records.statements`, generated at start) that
/// its finish job runs: the table and key it walks, what makes a row disagree, the indexes and
/// uniques to build, the constraints to validate. The rest (complete, abort, the migration) is
/// other commands' business and is not read here.
struct FinishStatements: Decodable, Sendable, Equatable {
    /// The table, qualified and quoted (`"public"."media"`).
    var table: String
    /// The key column, quoted.
    var key: String
    /// Boolean SQL over the table's bare columns: true when a row's two sides disagree;
    /// `false` when nothing syncs.
    var disagrees: String
    var indexes: [Index]
    var uniques: [Unique]
    /// `ALTER TABLE ... VALIDATE CONSTRAINT ...`, one a constraint.
    var validate: [String]

    /// An index built concurrently: its unquoted name, in the table's schema, and the
    /// `CREATE INDEX CONCURRENTLY` that builds it.
    struct Index: Decodable, Sendable, Equatable {
        var name: String
        var create: String
    }

    /// A unique constraint: its index built concurrently, then attached to the table as the
    /// constraint (`ADD CONSTRAINT ... UNIQUE USING INDEX`) under the same name.
    struct Unique: Decodable, Sendable, Equatable {
        var name: String
        var create: String
        var attach: String
    }

    init(table: String, key: String, disagrees: String, indexes: [Index], uniques: [Unique], validate: [String]) {
        self.table = table
        self.key = key
        self.disagrees = disagrees
        self.indexes = indexes
        self.uniques = uniques
        self.validate = validate
    }

    /// Lists that start left out are empty; the table, key and `disagrees` are required.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        table = try container.decode(String.self, forKey: .table)
        key = try container.decode(String.self, forKey: .key)
        disagrees = try container.decode(String.self, forKey: .disagrees)
        indexes = try container.decodeIfPresent([Index].self, forKey: .indexes) ?? []
        uniques = try container.decodeIfPresent([Unique].self, forKey: .uniques) ?? []
        validate = try container.decodeIfPresent([String].self, forKey: .validate) ?? []
    }

    private enum CodingKeys: String, CodingKey {
        case table, key, disagrees, indexes, uniques, validate
    }
}
