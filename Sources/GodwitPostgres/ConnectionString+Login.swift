extension ConnectionString {
    /// The same server, database and settings as `conninfo`, logging in as `user`, without
    /// `conninfo`'s password: libpq then finds one for `user` in the password file (`.pgpass`,
    /// `PGPASSFILE`), or the server takes a client certificate, peer or trust.
    ///
    /// Returned as `key=value` settings, each value quoted. The password is set empty rather than
    /// left out: an empty password makes libpq skip `PGPASSWORD` (the worker's own, when it
    /// comes from the environment) and still read the password file, so one role's password is
    /// never sent for another.
    public static func loggingIn(as user: String, from conninfo: String) throws -> String {
        var settings = try options(conninfo)
        settings["password"] = ""
        settings["user"] = user
        return settings.sorted { $0.key < $1.key }.map { "\($0.key)=\(quotedValue($0.value))" }
            .joined(separator: " ")
    }

    /// A value for a `key=value` string: single-quoted, with `\` and `'` escaped.
    static func quotedValue(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
