import Foundation
internal import CLibPQ

/// Helpers for connection strings: both URLs (`postgres://...`) and `key=value` conninfo.
///
/// libpq parses them, so every form libpq accepts (and PG* variables, `.pgpass` and service
/// files) works the same way here as in psql.
public enum ConnectionString {
    /// The parsed options of a connection string, or an error naming what is wrong
    /// (without repeating the string, which may hold a password).
    public static func options(_ conninfo: String) throws -> [String: String] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &errorMessage) else {
            defer { if let errorMessage { PQfreemem(errorMessage) } }
            let text = errorMessage.map { String(cString: $0) } ?? "invalid connection string"
            throw PostgresError(
                code: .client,
                message: "invalid database URL: \(text.trimmingTrailingNewlines)")
        }
        defer { PQconninfoFree(parsed) }
        var result: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                result[String(cString: keyword)] = String(cString: value)
            }
            option += 1
        }
        return result
    }

    /// The password in a connection string, if it has one.
    public static func password(in conninfo: String) -> String? {
        guard let password = (try? options(conninfo))?["password"], !password.isEmpty else { return nil }
        return password
    }

    /// A form of the connection string that is safe to print: the password is replaced.
    public static func redacted(_ conninfo: String) -> String {
        guard let password = password(in: conninfo) else { return conninfo }
        return scrub(conninfo, secret: password)
    }

    /// Replaces every occurrence of `secret` (and its percent-encoded form) in `text`.
    public static func scrub(_ text: String, secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return text }
        var result = text.replacingOccurrences(of: secret, with: "********")
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics), encoded != secret {
            result = result.replacingOccurrences(of: encoded, with: "********")
        }
        return result
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        return text
    }
}
