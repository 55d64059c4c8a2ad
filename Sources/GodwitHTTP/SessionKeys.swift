import Crypto
import Foundation
import GodwitPostgres

/// The per-process secret behind the CSRF tokens and the login cookie.
///
/// A CSRF token is an HMAC of the session id (its own random cookie) under this secret, so a
/// cookie someone else set (cookie tossing from a sibling domain, where the old double-submit
/// token was whatever the cookie said) gets them no token they can compute. The login cookie is
/// an HMAC over an expiry and a random nonce: it holds nothing of the token, stops working when
/// it expires or when the process restarts, and no two logins share one.
struct SessionKeys: Sendable {
    /// 32 random bytes. Kept as bytes: swift-crypto's `SymmetricKey` is not `Sendable`.
    private let secret: [UInt8]

    /// How long a login lasts: the cookie's `Max-Age` and the expiry inside it.
    static let loginLifetime = 12 * 3600

    init() {
        var generator = SystemRandomNumberGenerator()
        secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// A new session id: 32 random hex digits.
    static func newSessionID() -> String { randomToken() }

    /// Whether `text` has the form of a session id; anything else is refused, not repaired.
    static func isSessionID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy(isLowerHex)
    }

    /// The CSRF token the forms of session `id` carry.
    func csrfToken(forSession id: String) -> String {
        mac("csrf", id)
    }

    func isValidCSRF(_ sent: String, session id: String) -> Bool {
        Self.isSessionID(id) && constantTimeEqual(sent, csrfToken(forSession: id))
    }

    /// A login cookie's value, `EXPIRY-NONCE-MAC`, valid for `loginLifetime` from `now`.
    func loginCookie(now: Date = Date()) -> String {
        let expiry = Int(now.timeIntervalSince1970) + Self.loginLifetime
        let nonce = randomToken()
        return "\(expiry)-\(nonce)-\(mac("login", "\(expiry)-\(nonce)"))"
    }

    /// Whether `value` is a login cookie this process made and it has not expired at `now`.
    func isValidLogin(_ value: String, now: Date = Date()) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, (1...12).contains(parts[0].utf8.count),
            parts[0].utf8.allSatisfy({ (48...57).contains($0) }),
            let expiry = Int(parts[0]), parts[1].utf8.count == 32, parts[1].utf8.allSatisfy(Self.isLowerHex),
            parts[2].utf8.count == 64
        else { return false }
        guard constantTimeEqual(String(parts[2]), mac("login", "\(parts[0])-\(parts[1])")) else { return false }
        return Double(expiry) > now.timeIntervalSince1970
    }

    /// HMAC-SHA256 of `message` for `purpose` (so a CSRF token is never a valid login), in hex.
    private func mac(_ purpose: String, _ message: String) -> String {
        HMAC<SHA256>.authenticationCode(
            for: Data("godwit-\(purpose)\u{0}\(message)".utf8), using: SymmetricKey(data: secret)
        )
        .withUnsafeBytes { Hex.encode($0) }
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...102).contains(byte)
    }
}
