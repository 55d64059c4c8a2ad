/// One owner's share of Godwit's schema: the SQL that installs its objects, new, in one file,
/// and the upgrades after it.
///
/// Godwit's tables, views and functions live in one schema (`godwit` by default) but belong to
/// three owners, each in its own module: the queue (GodwitQueue), the backups' record
/// (GodwitBackups) and what runs on the queue (GodwitJobs: batched jobs, and the link from a
/// backup to the migrate job that took it). Each owner versions its part on its own in
/// `<schema>.schema_version` (`SchemaInstaller`), so that one can change without touching the
/// others, and a part is installed only where it is used: `godwit backup create` installs the
/// backups' table and nothing of the queue.
///
/// `install` makes the newest version at once; `upgrades[i]` takes version `i + 1` to `i + 2`,
/// so `latestVersion` is `upgrades.count + 1`. Never edit a released upgrade, nor change what
/// `install` makes without adding the upgrade that makes the same: a database upgraded step by
/// step must equal a new install (a test compares their catalogs).
///
/// The SQL is a template: `@schema@` stands for the schema's quoted name, and the installer's
/// variables for the rest (the queue's `@channel@`). It is substituted only for a step that
/// runs, so a start that finds the schema current does none of that work.
public struct SchemaPart: Sendable {
    /// The owner's name as `schema_version` records it: `queue`, `backups`, `jobs`.
    public let owner: String
    /// The owners whose objects this part's SQL uses, installed before it.
    public let requires: [String]
    /// Makes the newest version of the owner's objects in an empty schema.
    public let install: String
    /// `upgrades[i]` takes version `i + 1` to `i + 2`.
    public let upgrades: [String]

    public init(owner: String, requires: [String] = [], install: String, upgrades: [String] = []) {
        self.owner = owner
        self.requires = requires
        self.install = install
        self.upgrades = upgrades
    }

    /// The newest version this build knows.
    public var latestVersion: Int { upgrades.count + 1 }

    /// A template of an embedded resource (`PackageResources.x_sql`).
    public static func template(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
