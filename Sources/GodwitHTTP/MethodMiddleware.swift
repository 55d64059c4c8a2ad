import Hummingbird

/// Answers 405 with `Allow` (an HTML page on the dashboard's paths) for a path that exists
/// under another method; Hummingbird's router answers 404 to both. The routes are the route
/// collections' own (`OperationsServer.routeCollections`), matched segment by segment as the
/// router matches them (a `:name` capture stands for any one segment).
struct MethodMiddleware: RouterMiddleware {
    typealias Context = OperationsContext
    private let routes: [(path: RouterPath, methods: [HTTPRequest.Method])]

    init(_ routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        var grouped: [(path: RouterPath, methods: [HTTPRequest.Method])] = []
        for route in routes {
            if let index = grouped.firstIndex(where: { $0.path.description == route.path.description }) {
                grouped[index].methods.append(route.method)
            } else {
                grouped.append((route.path, [route.method]))
            }
        }
        self.routes = grouped
    }

    /// The methods `path` answers to (GET with HEAD), or nil when no route matches it.
    func allowed(_ path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        let matching = routes.filter { route in
            route.path.components.count == segments.count
                && zip(route.path.components, segments).allSatisfy { element, segment in element ~= segment }
        }
        guard !matching.isEmpty else { return nil }
        var methods: [HTTPRequest.Method] = []
        for method in matching.flatMap(\.methods) where !methods.contains(method) {
            methods.append(method)
            if method == .get && !methods.contains(.head) { methods.append(.head) }
        }
        return methods
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let methods = allowed(request.uri.path), !methods.contains(request.method) {
            // Thrown, so that `ErrorPageMiddleware` answers a dashboard path with an HTML page;
            // /health and /metrics get Hummingbird's JSON.
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw HTTPError(
                .methodNotAllowed, headers: [.allow: allow],
                message: "\(request.uri.path) answers \(allow) only")
        }
        return try await next(request, context)
    }
}
