import Foundation

/// One change in full, for `godwit change status NAME` and the dashboard's change page: its
/// summary, its file, the state of what it builds (from `pg_index` and `pg_constraint`), and the
/// reader evidence for each column it drops.
public struct ChangeDetails: Sendable, Equatable, Encodable {
    public var summary: ChangeSummary
    /// The change file's text as given to `change start`.
    public var source: String
    /// The columns complete drops, in the file's order.
    public var droppedColumns: [String]
    /// What the change builds or adds, each with its state now.
    public var objects: [ChangeObject]
    /// Per dropped column, what the worker's samples of `pg_stat_statements` saw.
    public var readers: [ReaderEvidence]
    /// Whether the worker could sample `pg_stat_statements` (nil before any worker tried), and
    /// why not when it could not.
    public var readerSampling: Bool?
    public var readerSamplingUnavailable: String?
    public var readerSampledAt: String?
    /// Why the stored file could not be read back, in the rare case it cannot (a file written
    /// for a newer Godwit): then `objects` is empty.
    public var definitionError: String?

    /// The summary's keys at the top level, then the details' (every key written, `null` too).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try summary.encodeFields(into: &container)
        try container.encode(source, forKey: "source")
        try container.encode(droppedColumns, forKey: "dropped_columns")
        try container.encode(objects, forKey: "objects")
        try container.encode(readers, forKey: "readers")
        try container.encode(readerSampling, forKey: "reader_sampling")
        try container.encode(readerSamplingUnavailable, forKey: "reader_sampling_unavailable")
        try container.encode(readerSampledAt, forKey: "reader_sampled_at")
        try container.encode(definitionError, forKey: "definition_error")
    }
}

/// An index or constraint a change builds, and where it stands in the catalog.
public struct ChangeObject: Sendable, Equatable, Encodable {
    /// `index`, `unique`, `check`, `foreign-key` or `not-null`.
    public var kind: String
    /// Its name in the catalog (`ChangeNames`).
    public var name: String
    public var columns: [String]
    /// In words: `not built`, `not valid (building, or a failed build)`, `valid` (an index);
    /// `built, not attached`,
    /// `attached` (a unique constraint); `missing`, `not valid`, `validated` (a check, a foreign
    /// key, the NOT NULL check); `NOT NULL` once complete has set it.
    public var state: String
    /// Whether it is in its final state for complete: an index valid, a constraint validated
    /// or attached, a column NOT NULL (or its check validated).
    public var done: Bool
}

/// What the worker's samples of `pg_stat_statements` saw of one dropped column.
public struct ReaderEvidence: Sendable, Equatable, Codable {
    public var column: String
    /// The last sample in which a statement naming the column had run; nil when none has.
    public var lastSeenAt: String?
    /// Since when the samples were continuous and complete.
    public var windowStartedAt: String?
    public var sampledAt: String?
    /// The `application_name`s of sessions seen running statements that name the column.
    public var applicationNames: [String]

    enum CodingKeys: String, CodingKey {
        case column
        case lastSeenAt = "last_seen_at"
        case windowStartedAt = "window_started_at"
        case sampledAt = "sampled_at"
        case applicationNames = "application_names"
    }

    public init(
        column: String, lastSeenAt: String? = nil, windowStartedAt: String? = nil, sampledAt: String? = nil,
        applicationNames: [String] = []
    ) {
        self.column = column
        self.lastSeenAt = lastSeenAt
        self.windowStartedAt = windowStartedAt
        self.sampledAt = sampledAt
        self.applicationNames = applicationNames
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        column = try container.decode(String.self, forKey: .column)
        lastSeenAt = try container.decodeIfPresent(String.self, forKey: .lastSeenAt)
        windowStartedAt = try container.decodeIfPresent(String.self, forKey: .windowStartedAt)
        sampledAt = try container.decodeIfPresent(String.self, forKey: .sampledAt)
        applicationNames = try container.decodeIfPresent([String].self, forKey: .applicationNames) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(column, forKey: .column)
        try container.encode(lastSeenAt, forKey: .lastSeenAt)
        try container.encode(windowStartedAt, forKey: .windowStartedAt)
        try container.encode(sampledAt, forKey: .sampledAt)
        try container.encode(applicationNames, forKey: .applicationNames)
    }
}
