import Hummingbird

/// The server's routes, in three collections: what a load balancer and Prometheus read, the
/// dashboard's pages and the fragments that refresh them, and the dashboard's controls.
extension OperationsServer {
    /// `/health`, its readiness and liveness, and `/metrics`: no session, no HTML.
    func probeRoutes() -> RouteCollection<OperationsContext> {
        let routes = RouteCollection(context: OperationsContext.self)
        routes.get("/health") { _, _ in await self.healthResponse() }
        routes.get("/health/ready") { _, _ in await self.healthResponse(readiness: true) }
        routes.get("/health/live") { _, _ in
            Self.json(.ok, ["status": "alive", "worker": self.workerStatus()?.state.rawValue ?? "none"])
        }
        routes.get("/metrics") { _, _ in await self.metricsResponse() }
        return routes
    }

    /// The dashboard's pages, each with the fragment its page refreshes itself from.
    func dashboardRoutes() -> RouteCollection<OperationsContext> {
        let routes = RouteCollection(context: OperationsContext.self)
        routes.get("/") { request, _ in
            try await self.page(request) { pages in
                let filter = try self.filter(request)
                return pages.jobsPage(
                    try await self.store.jobs(filter), counts: try await self.store.counts(), filter: filter,
                    kinds: try await self.store.kinds(known: self.configuration.knownKinds),
                    notice: Self.bulkNotice(request))
            }
        }
        routes.get("/fragments/jobs") { request, _ in
            try await self.page(request, fragment: true) { pages in
                pages.jobRows(try await self.store.jobs(try self.filter(request)).jobs)
            }
        }
        routes.get("/fragments/counts") { request, _ in
            try await self.page(request, fragment: true) { pages in
                pages.countsBar(try await self.store.counts(), filter: try self.filter(request))
            }
        }
        routes.get("/jobs/:id") { request, context in
            try await self.page(request) { pages in
                let facts = try await self.jobFacts(try Self.jobID(context))
                return pages.jobPage(
                    facts.job, batches: facts.batches, shards: facts.shards, payload: facts.payload,
                    errors: facts.errors, role: facts.role)
            }
        }
        routes.get("/fragments/jobs/:id") { request, context in
            try await self.page(request, fragment: true) { pages in
                let facts = try await self.jobFacts(try Self.jobID(context))
                return pages.jobDetail(
                    facts.job, batches: facts.batches, shards: facts.shards, payload: facts.payload,
                    errors: facts.errors, role: facts.role)
            }
        }
        routes.get("/workers") { request, _ in
            try await self.page(request) { pages in pages.workersPage(try await self.store.workers()) }
        }
        routes.get("/fragments/workers") { request, _ in
            try await self.page(request, fragment: true) { pages in pages.workerRows(try await self.store.workers()) }
        }
        routes.get("/migrations") { request, _ in
            try await self.page(request) { pages in
                let hasSource = self.configuration.migrationsDirectory != nil
                do {
                    let (rows, lint) = try await self.store.migrations(linting: true)
                    return pages.migrationsPage(rows, hasSource: hasSource, lint: lint)
                } catch  where OperationsStore.permissionDenied(error) {
                    return pages.migrationsPage(
                        [], hasSource: hasSource, denied: "\(error)", role: try await self.store.currentRole(),
                        ledger: self.configuration.migrationConfig.tableName)
                }
            }
        }
        routes.get("/backups") { request, _ in
            try await self.page(request) { pages in pages.backupsPage(try await self.store.backups()) }
        }
        return routes
    }

    /// Signing in, and the POSTs that change a job: each carries the session's CSRF token.
    func controlRoutes() -> RouteCollection<OperationsContext> {
        let routes = RouteCollection(context: OperationsContext.self)
        routes.get("/login") { request, _ in try await self.page(request) { pages in pages.loginPage(failed: false) } }
        routes.post("/login") { request, context in try await self.login(request, context: context) }
        routes.post("/jobs/:id/:action") { request, context in try await self.control(request, context: context) }
        routes.post("/failed/retry") { request, context in try await self.retryFailed(request, context: context) }
        return routes
    }
}
