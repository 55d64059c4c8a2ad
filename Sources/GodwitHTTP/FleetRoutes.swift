import GodwitFleet
import Hummingbird

/// The fleet page and one run's page, with the fragments that refresh them.
extension OperationsServer {
    func fleetRoutes() -> RouteCollection<OperationsContext> {
        let routes = RouteCollection(context: OperationsContext.self)
        routes.get("/fleet") { request, _ in
            try await self.page(request) { pages in pages.fleetPage(try await self.store.fleetRuns()) }
        }
        routes.get("/fragments/fleet") { request, _ in
            try await self.page(request, fragment: true) { pages in pages.fleetRows(try await self.store.fleetRuns()) }
        }
        routes.get("/fleet/:id") { request, context in
            let run = try await self.fleetRunFacts(try Self.runID(context))
            return try await self.page(request) { pages in
                pages.fleetRunPage(run.run, targets: run.targets, progress: run.progress)
            }
        }
        routes.get("/fragments/fleet/:id") { request, context in
            let run = try await self.fleetRunFacts(try Self.runID(context))
            return try await self.page(request, fragment: true) { pages in
                pages.fleetRunDetail(run.run, targets: run.targets, progress: run.progress)
            }
        }
        return routes
    }

    /// The run (a 404 without it), its targets, and for an enqueue run each target's backfill
    /// as its own queue reports it: read over a short session a target (no password stored:
    /// `.pgpass` or the environment), 8 at a time, each bounded by a 3 s connect timeout, and
    /// reused for a while by every request (`fleetProgress`).
    func fleetRunFacts(_ id: Int64) async throws -> (
        run: FleetRunOverview, targets: [FleetTargetRecord], progress: [String: FleetBackfillProgress]
    ) {
        guard let (run, targets) = try await store.fleetRun(id) else {
            throw HTTPError(.notFound, message: "no fleet run \(id)")
        }
        var progress: [String: FleetBackfillProgress] = [:]
        if run.run.command == "enqueue" {
            let jobs = targets.compactMap { target in target.jobID.map { (target: target.target, jobID: $0) } }
            progress = await fleetProgress.progress(run: id, jobs: jobs)
        }
        return (run, targets, progress)
    }

    static func runID(_ context: OperationsContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw HTTPError(.badRequest, message: "a fleet run id is a positive number")
        }
        return id
    }
}
