// Stand-ins until the redaction work lands; replaced by ConnectionString's own functions.
extension ConnectionString {
    public static func scrub(_ message: String, conninfo: String) -> String {
        scrub(message, secret: password(in: conninfo))
    }

    public static func validate(_ conninfo: String) throws {}
}
