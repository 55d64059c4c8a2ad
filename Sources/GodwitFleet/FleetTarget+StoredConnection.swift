import GodwitPostgres

extension FleetTarget {
    /// The settings that hold a secret, never stored: libpq's `password` and `sslpassword`.
    static let secretSettings: Set<String> = ["password", "sslpassword"]

    /// The connection string as `fleet_targets.connection` stores it: libpq's parse of it,
    /// less its password (and `sslpassword`), as a `key=value` string in a fixed order (host,
    /// port, dbname, user, then the rest by name). Resume connects with it, so libpq finds the
    /// password where it finds one for any connection string without one: `PGPASSWORD`, the
    /// password file (`.pgpass`, `PGPASSFILE`, a `passfile=` setting kept here). A string libpq
    /// cannot parse (refused when the targets were read) is stored redacted.
    public var storedConnection: String {
        Self.withoutSecrets(connection)
    }

    /// `connection` less its password, as `storedConnection` spells it.
    public static func withoutSecrets(_ connection: String) -> String {
        guard let options = try? ConnectionString.options(connection) else {
            return ConnectionString.redacted(connection)
        }
        let first = ["host", "hostaddr", "port", "dbname", "user"]
        let kept = options.filter { !secretSettings.contains($0.key) && !$0.value.isEmpty }
        let ordered =
            first.compactMap { key in kept[key].map { (key, $0) } }
            + kept.filter { !first.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return ordered.map { "\($0.0)=\(quotedSetting($0.1))" }.joined(separator: " ")
    }

    /// A `key=value` value as libpq reads it back: bare when it is a plain word, else in single
    /// quotes with `\` and `'` escaped.
    static func quotedSetting(_ value: String) -> String {
        let plain =
            !value.isEmpty && value.unicodeScalars.allSatisfy { !$0.properties.isWhitespace && $0 != "'" && $0 != "\\" }
        guard !plain else { return value }
        return "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
