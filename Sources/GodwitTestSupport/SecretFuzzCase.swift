/// A connection string carrying a distinctive secret, for tests that a password is never
/// printed: well formed or not (unbalanced brackets, bad percent escapes, bad ports, unknown
/// settings, stray quotes), with the secret in a URL's userinfo, a query parameter or a
/// `key=value` setting.
///
/// The secret is made of random chunks (`Zq` and six letters or digits) joined by the
/// characters that break parsers: `@ : / % ? & = [ ] ' \` and blanks. A chunk appearing
/// anywhere is a leak.
public struct SecretFuzzCase: CustomStringConvertible, Sendable {
    public var conninfo: String
    /// The secret's pieces; any of them in a text is a leak.
    public var chunks: [String]

    public var description: String { "«\(conninfo)»" }

    /// The first piece of the secret that `text` shows, if any.
    public func leak(in text: String) -> String? { chunks.first { text.contains($0) } }

    /// `count` cases from `seed` (the same seed gives the same cases), connecting to `host`
    /// (`host:port`) where the string is well formed enough for that.
    public static func generate(count: Int, seed: UInt64, host: String = "127.0.0.1:5432") -> [SecretFuzzCase] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in make(&random, host: host) }
    }

    private static func make(_ random: inout SplitMix64, host: String) -> SecretFuzzCase {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        let chunks = (0..<Int.random(in: 1...3, using: &random)).map { _ in
            "Zq" + String((0..<6).map { _ in alphabet.randomElement(using: &random)! })
        }
        func secret(_ separators: [String]) -> String {
            var text = chunks[0]
            for chunk in chunks.dropFirst() { text += separators.randomElement(using: &random)! + chunk }
            if Bool.random(using: &random) { text = separators.randomElement(using: &random)! + text }
            if Bool.random(using: &random) { text += separators.randomElement(using: &random)! }
            return text
        }
        let userinfo = ["@", ":", "/", "%zz", "%4", "%", "?", "&", "=", "#", "[", "]", ",", "%40", " ", "'"]
        let query = ["%zz", "%", "@", ":", "/", "?", "&", "=", " ", "#", "'", "%26"]
        let bare = [" ", "=", "@", ":", "/", "%zz", "&", "[", "]", "#", ",", "\\ ", "  "]
        let quoted = ["\\'", " ", "=", "@", ":", "/", "%zz", "&", "\\\\", "'"]
        let key = ["password", "PASSWORD", "pass%77ord", "sslpassword", "Password"].randomElement(using: &random)!
        // Parts of the string; junk goes only between them, never inside a secret or its name.
        let parts: [String]
        switch Int.random(in: 0..<10, using: &random) {
        case 0: parts = ["postgres://", "app:\(secret(userinfo))@", host, "/db"]
        case 1: parts = ["postgresql://", "app:\(secret(userinfo))@", host, "/db", "?sslmode=disable"]
        case 2: parts = ["postgres://", "app:\(secret(userinfo))@[", "::1", "/db"]
        case 3:
            parts = [
                "postgres://", "app:\(secret(userinfo))@", "127.0.0.1:",
                ["99999", "x1", "-5", ""].randomElement(using: &random)!, "/db",
            ]
        case 4: parts = ["postgres://", host, "/db", "?\(key)=\(secret(query))", "&sslmode=disable"]
        case 5: parts = ["postgresql://", "app@", host, "/db?sslmode=disable", "&\(key)=\(secret(query))"]
        // No `@`: the password shows as a port. (Junk before it could make it anything.)
        case 6: parts = ["postgres://app:\(secret([":", "%zz", "%", "=", "&", "#", "'"]))", "/db"]
        case 7:
            parts = [
                "host=\(host.split(separator: ":")[0])", " port=\(host.split(separator: ":")[1])", " user=app",
                " \(key)=\(secret(bare))", " dbname=db",
            ]
        case 8: parts = ["host=127.0.0.1", " \(key) = '\(secret(quoted))'", " dbname=db"]
        default: parts = ["dbname=db", " \(key)='\(secret(quoted))"]
        }
        let junk = [
            "[", "]", "%zz", "%", ":99999", "?bogus=1", "&nothing=1", "'", " ", "=", "\\", " bogus", " port=abc", "",
        ]
        var text = ""
        for (index, part) in parts.enumerated() {
            if index > 0, Int.random(in: 0..<4, using: &random) == 0 { text += junk.randomElement(using: &random)! }
            text += part
        }
        return SecretFuzzCase(conninfo: text, chunks: chunks)
    }
}

/// A small seeded generator, so that a failing case can be reproduced.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E49B
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
