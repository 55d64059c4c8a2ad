import GodwitChanges
import Hummingbird

/// The changes page and one change's page, with the fragments that refresh them. A change is
/// named in the query string (`/change?name=...`), so that any name, slashes and all, reaches
/// the page as it is.
extension OperationsServer {
    func changeRoutes() -> RouteCollection<OperationsContext> {
        let routes = RouteCollection(context: OperationsContext.self)
        routes.get("/changes") { request, _ in
            try await self.page(request) { pages in pages.changesPage(try await self.store.changes()) }
        }
        routes.get("/fragments/changes") { request, _ in
            try await self.page(request, fragment: true) { pages in pages.changeRows(try await self.store.changes()) }
        }
        routes.get("/change") { request, _ in
            let name = try Self.changeName(request)
            return try await self.page(request) { pages in
                pages.changePage(try await self.changeDetails(name))
            }
        }
        routes.get("/fragments/change") { request, _ in
            let name = try Self.changeName(request)
            return try await self.page(request, fragment: true) { pages in
                pages.changeDetail(try await self.changeDetails(name))
            }
        }
        return routes
    }

    /// The change named, or a 404 naming it.
    func changeDetails(_ name: String) async throws -> ChangeDetails {
        guard let details = try await store.change(name) else {
            throw HTTPError(.notFound, message: "no change named \(name)")
        }
        return details
    }

    /// `name` from the query string: present, not empty, at most 200 characters; else a 400.
    static func changeName(_ request: Request) throws -> String {
        let query: [String: String]
        do {
            query = try URLEncodedForm.parse(request.uri.query ?? "")
        } catch {
            throw HTTPError(.badRequest, message: "the query string is malformed: \(error.reason)")
        }
        guard let name = query["name"], !name.isEmpty, name.count <= 200 else {
            throw HTTPError(.badRequest, message: "name a change: /change?name=NAME")
        }
        return name
    }
}
