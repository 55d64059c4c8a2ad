import Hummingbird

/// The cookies of a request, read without trapping, and our own ones at most once each.
///
/// Cookies ignore ports, so a browser sends us the cookies of every other server it talks to on
/// the same host name; a pair we cannot read (no `=`) is skipped, since it is not ours. A cookie
/// of ours that comes twice is refused: the second one was set by someone else, on a path or a
/// parent domain (cookie tossing), and we cannot tell which is which.
struct RequestCookies: Sendable {
    private var pairs: [(name: Substring, value: Substring)] = []

    init(_ request: Request) {
        self.init(headers: request.headers[values: .cookie])
    }

    /// From the values of the `Cookie` fields (HTTP/2 sends one a cookie; HTTP/1 one for all).
    init(headers: [String]) {
        for header in headers {
            for piece in header.split(separator: ";", omittingEmptySubsequences: true) {
                guard let equals = piece.firstIndex(of: "=") else { continue }
                let name = piece[..<equals].trimmingWhitespace()
                var value = piece[piece.index(after: equals)...].trimmingWhitespace()
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                    value = value.dropFirst().dropLast()
                }
                guard !name.isEmpty else { continue }
                pairs.append((name, value))
            }
        }
    }

    /// The value of cookie `name`, nil when absent; throws when it comes more than once.
    func single(_ name: String) throws(MalformedRequest) -> String? {
        let values = pairs.filter { $0.name == name }
        guard values.count <= 1 else {
            throw MalformedRequest(
                "the request carries \(values.count) \(name) cookies; one was set by another site on this host name: "
                    + "clear this site's cookies and reload")
        }
        return values.first.map { String($0.value) }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
