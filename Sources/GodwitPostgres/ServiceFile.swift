/// A libpq connection service file (`pg_service.conf`), the one way to hand a client program
/// a setting that has no environment variable (`sslpassword`) without its command line.
///
/// libpq reads it a line at a time: `[name]` starts a service, `key=value` sets a value, taken
/// as written from after the first `=` to the end of the line, less trailing whitespace.
/// There is no quoting, so a value that ends with whitespace or holds a line break cannot be
/// written.
enum ServiceFile {
    /// The service Godwit writes, and names in `PGSERVICE`.
    static let name = "godwit"

    /// Whether libpq would read `value` back unchanged from a service file.
    static func canHold(_ value: String) -> Bool {
        !value.contains(where: \.isNewline) && value.last?.isWhitespace != true
    }

    /// The file's text: one service with `settings`, every value one `canHold` accepts.
    static func text(service: String, _ settings: [String: String]) -> String {
        "[\(service)]\n" + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
    }
}
