/// Whether a POST comes from one of our own pages, by what the browser says of where it was
/// sent from: `Origin` must be the request's own origin (`http://` or `https://` and its `Host`),
/// and `Sec-Fetch-Site` may not say `cross-site` or `same-site`.
///
/// A client that is not a browser (curl, Prometheus) sends neither header and passes; every
/// browser in use sends `Origin` with a POST. `same-site` is refused too: a page on a sibling
/// subdomain is another application, and the one that could toss cookies at us.
enum OriginCheck {
    /// Nil when the request may go on, else the reason it may not, in one line.
    static func refusal(origin: String?, fetchSite: String?, authority: String?) -> String? {
        if let fetchSite {
            switch fetchSite.lowercased() {
            case "same-origin", "none": break
            case "cross-site", "same-site":
                return "refused: this form was sent from another site (Sec-Fetch-Site: \(fetchSite.lowercased()))"
            default: return "refused: Sec-Fetch-Site is not one of same-origin, same-site, cross-site, none"
            }
        }
        guard let origin else { return nil }
        guard let authority, sameOrigin(origin.lowercased(), authority: authority.lowercased()) else {
            let own = authority.map { "http(s)://\($0)" } ?? "no Host"
            return "refused: the Origin of this form is not this server's own (\(own))"
        }
        return nil
    }

    /// Whether `origin` (`scheme://host[:port]`, lower-cased) is `http://` or `https://` and
    /// `authority`, a default port (80, 443) written on either side or not.
    private static func sameOrigin(_ origin: String, authority: String) -> Bool {
        for (scheme, port) in [("http://", ":80"), ("https://", ":443")] where origin.hasPrefix(scheme) {
            let rest = String(origin.dropFirst(scheme.count))
            func normal(_ text: String) -> String { text.hasSuffix(port) ? String(text.dropLast(port.count)) : text }
            return !rest.isEmpty && normal(rest) == normal(authority)
        }
        return false
    }
}
