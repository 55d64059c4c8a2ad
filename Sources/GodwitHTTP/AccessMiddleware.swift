import Foundation
import GodwitPostgres
import Hummingbird

/// With a token configured, lets through only requests that carry it: `Authorization: Bearer
/// TOKEN`, or the login cookie that `POST /login` sets (an expiring value keyed by this
/// process's secret, see `SessionKeys`). Pages send a browser to `/login`; other paths get 401.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = OperationsContext
    let token: String?
    let keys: SessionKeys

    static let cookieName = "godwit_login"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let token, !token.isEmpty else { return try await next(request, context) }
        if request.uri.path == "/login" { return try await next(request, context) }
        if try allowed(request, token: token) { return try await next(request, context) }
        if request.method == .get, request.headers[.accept]?.contains("text/html") ?? false {
            return Response(status: .seeOther, headers: [.location: "/login"])
        }
        return Response(
            status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"godwit\"", .contentType: "text/plain"],
            body: .init(byteBuffer: ByteBuffer(string: "a bearer token is required\n")))
    }

    private func allowed(_ request: Request, token: String) throws -> Bool {
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            return constantTimeEqual(String(header.dropFirst(7)), token)
        }
        let cookie: String?
        do {
            cookie = try RequestCookies(request).single(Self.cookieName)
        } catch {
            throw HTTPError(.badRequest, message: error.reason)
        }
        // A value of another form (an older Godwit's, an expired one) is no login; the login
        // page sets a new one over it.
        return cookie.map { keys.isValidLogin($0) } ?? false
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the secret.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for index in x.indices { difference |= x[index] ^ y[index] }
    return difference == 0
}

/// A random token of 32 hex digits (CSRF tokens, script nonces).
func randomToken() -> String {
    var generator = SystemRandomNumberGenerator()
    return Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
}
