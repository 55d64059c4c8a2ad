#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Which `Host` a server without a token answers: a defence against DNS rebinding, where a page
/// on `attacker.example` has its name re-pointed at 127.0.0.1 and then reads our pages as its
/// own origin. The browser still sends `Host: attacker.example`, so only names that cannot be
/// re-pointed pass: loopback IP literals, `localhost`, and the names the operator listed
/// (`--http-allowed-host`).
struct HostPolicy: Sendable {
    /// Lower-cased, without brackets or port.
    let allowedNames: Set<String>

    init(allowedNames: [String]) {
        self.allowedNames = Set(allowedNames.map { Self.bare($0.lowercased()) })
    }

    /// Whether a request whose `Host` (the HTTP/1 authority) is `authority` may be served.
    func allows(authority: String?) -> Bool {
        guard let authority, let host = Self.host(ofAuthority: authority) else { return false }
        return Self.isLoopback(host) || allowedNames.contains(host)
    }

    /// The host of `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`, lower-cased and without
    /// brackets; nil when it is none of those (two colons outside brackets, a port that is not
    /// digits, an empty host).
    static func host(ofAuthority authority: String) -> String? {
        let text = authority.lowercased()
        var host: Substring
        var port: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                port = rest.dropFirst()
            }
            guard isIPv6Literal(String(host)) else { return nil }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            host = parts[0]
            port = parts.count == 2 ? parts[1] : nil
        }
        if let port {
            guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        }
        guard !host.isEmpty else { return nil }
        return String(host)
    }

    /// Whether `host` reaches this machine only: `localhost`, an IPv4 literal in 127.0.0.0/8, or
    /// the IPv6 literal ::1 (with or without brackets). Nothing else: `127.attacker.example` is a
    /// name that DNS can point anywhere.
    static func isLoopback(_ host: String) -> Bool {
        let host = bare(host.lowercased())
        if host == "localhost" { return true }
        if let v4 = ipv4(host) { return v4 >> 24 == 127 }
        if let v6 = ipv6(host) { return v6 == Array(repeating: 0, count: 15) + [1] }
        return false
    }

    /// Whether `name` can be an allowed host: a DNS name or an IP literal, without a port.
    static func isValidName(_ name: String) -> Bool {
        let host = bare(name.lowercased())
        if isIPv6Literal(host) { return true }
        return !host.isEmpty && host.utf8.count <= 253
            && host.utf8.allSatisfy {
                (97...122).contains($0) || (48...57).contains($0) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F
            }
    }

    private static func bare(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    static func isIPv6Literal(_ text: String) -> Bool { ipv6(text) != nil }

    /// Dotted-quad IPv4 (`inet_pton`: four decimal parts, no `127.1` shorthand), as a number.
    private static func ipv4(_ text: String) -> UInt32? {
        // Checked first, so that no NUL or other byte ends the C string early.
        guard !text.isEmpty, text.utf8.count <= 15,
            text.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || (48...57).contains($0) })
        else { return nil }
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return UInt32(bigEndian: address.s_addr)
    }

    /// An IPv6 literal's 16 bytes.
    private static func ipv6(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 45,
            text.utf8.allSatisfy({
                $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || Character(Unicode.Scalar($0)).isHexDigit
            })
        else { return nil }
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }
}
