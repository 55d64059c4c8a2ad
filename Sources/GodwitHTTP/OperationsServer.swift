import Foundation
import GodwitFleet
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Hummingbird
import Logging
import Prometheus

/// `/health`, `/metrics` and the dashboard, as a Hummingbird application.
///
/// The routes read through a pool of two connections of their own, so a busy dashboard never
/// takes a connection from the worker; run `pool` in the same service group, before the
/// application. Controls are POSTs carrying the session's CSRF token (an HMAC of the session
/// cookie under this process's secret, see `SessionKeys`) and sent from our own origin
/// (`RequestGuard`), so neither a GET nor a form on another site changes anything.
public struct OperationsServer: Sendable {
    public let configuration: OperationsConfiguration
    public let pool: ConnectionPool
    public let metrics: WorkerMetrics
    let store: OperationsStore
    let health: HealthProbe
    let databaseMetrics: DatabaseMetricsCache
    let fleetProgress: FleetProgressCache
    let workerStatus: @Sendable () -> WorkerStatus?
    let logger: Logger
    let keys = SessionKeys()
    let loginLimiter: LoginRateLimiter

    static let sessionCookie = "godwit_session"
    /// What a proxy in front says the client used, for the cookies' `Secure` only.
    static let forwardedProto = HTTPFields.Element.Name("X-Forwarded-Proto")!

    /// - Parameter workerStatus: the worker's state for `/health`, nil for `godwit serve`.
    public init(
        configuration: OperationsConfiguration, metrics: WorkerMetrics? = nil, logger: Logger,
        workerStatus: @escaping @Sendable () -> WorkerStatus? = { nil }
    ) {
        self.configuration = configuration
        var options = SessionOptions()
        options.applicationName = "godwit http"
        options.connectTimeout = .seconds(5)
        // The queue's reads and controls run only Godwit's SQL: nothing planted in a schema the
        // login searches may stand in for a name or operator of theirs.
        options.pinnedSearchPath = SessionOptions.catalogSearchPath
        self.pool = ConnectionPool(
            configuration: .init(
                conninfo: configuration.databaseURL, options: options, maximumConnections: 2,
                connectRetry: .connecting(for: .seconds(1))))
        self.metrics = metrics ?? WorkerMetrics(knownKinds: configuration.knownKinds)
        self.store = OperationsStore(
            pool: pool, schema: configuration.schema, migrationsDirectory: configuration.migrationsDirectory,
            migrationConfig: configuration.migrationConfig, databaseURL: configuration.databaseURL)
        self.databaseMetrics = DatabaseMetricsCache(
            metrics: DatabaseMetrics(store: store, knownKinds: configuration.knownKinds),
            minimumInterval: configuration.metricsReadInterval)
        let schema = configuration.schema
        self.fleetProgress = FleetProgressCache(minimumInterval: configuration.fleetProgressReadInterval) { jobs in
            await FleetBackfillProgress.read(jobs, schema: schema, parallel: 8, connectTimeout: .seconds(3))
        }
        self.health = HealthProbe(
            databaseURL: configuration.databaseURL, schema: configuration.schema,
            timeout: configuration.healthTimeout, cacheDuration: configuration.healthCacheDuration)
        self.workerStatus = workerStatus
        self.logger = logger
        self.loginLimiter = LoginRateLimiter(burst: configuration.loginBurst, interval: configuration.loginInterval)
    }

    /// The application, bound to the configured address, with the idle (and header) timeout
    /// and the connection cap of the configuration.
    /// - Parameter onServerRunning: called once the server listens (tests wait on it).
    public func application(onServerRunning: @escaping @Sendable () async -> Void = {}) -> some ApplicationProtocol {
        Application(
            router: router(),
            server: .http1(
                configuration: .init(
                    idleTimeout: .milliseconds(Int64(configuration.idleTimeout / .milliseconds(1))),
                    httpDecoderConfiguration: .init(
                        maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 32 * 1024, maxHeaderFieldCount: 100))),
            configuration: serverConfiguration(), onServerRunning: { _ in await onServerRunning() }, logger: logger)
    }

    /// The address, and the cap on connections: one over it waits in the listen backlog.
    func serverConfiguration() -> ApplicationConfiguration {
        .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: nil,
            availableConnectionsDelegate: .maximum(configuration.maximumConnections, logger: logger))
    }

    /// Everything a job's page shows: the job (404 without it), its newest batches, its shards,
    /// its payload where this server's role may see it, its attempts' errors (the server's DETAIL
    /// only with the payload's rights), and the role, for saying what it may not see.
    func jobFacts(_ id: Int64) async throws -> (
        job: JobRecord, batches: [BatchRow], shards: [JobRecord], payload: JobPayload, errors: [JobErrorRecord],
        role: String
    ) {
        guard let job = try await store.job(id) else { throw HTTPError(.notFound, message: "no job \(id)") }
        let payload = try await store.payload(of: id)
        return (
            job, try await store.batches(of: id), try await store.shards(of: job), payload,
            try await store.errors(of: id, detail: payload.fields != nil),
            payload.fields == nil ? try await store.currentRole() : ""
        )
    }

    /// What "Retry all failed" did, from the query string it redirects with.
    static func bulkNotice(_ request: Request) -> String? {
        guard let query = try? URLEncodedForm.parse(request.uri.query ?? ""),
            let retried = query["retried"].flatMap(Int.init)
        else { return nil }
        let refused = query["refused"].flatMap(Int.init) ?? 0
        var text = "Retried \(retried) failed job\(retried == 1 ? "" : "s")."
        if refused > 0 {
            text +=
                " \(refused) other\(refused == 1 ? " was" : "s were") left failed: this server's role may not retry "
                + "\(refused == 1 ? "it" : "them") (a job another role enqueued needs membership in that role)."
        }
        return text
    }

    /// The route collections: the probes, the dashboard's pages, the changes' and the fleet's
    /// pages, and its controls.
    func routeCollections() -> [RouteCollection<OperationsContext>] {
        [probeRoutes(), dashboardRoutes(), changeRoutes(), fleetRoutes(), controlRoutes()]
    }

    /// The routes behind, in order: `RequestGuard` (one Host; without a token, a loopback or
    /// allowed Host; a POST from our own origin), `ErrorPageMiddleware` (errors of dashboard
    /// paths as HTML), `MethodMiddleware` (405, from the collections' own routes),
    /// `AccessMiddleware` (the token).
    public func router() -> Router<OperationsContext> {
        let collections = routeCollections()
        // Middleware wraps only the routes added after it, so the 405s are learnt from the
        // collections in a router of their own first.
        let listing = Router(context: OperationsContext.self)
        for collection in collections { listing.addRoutes(collection) }
        let router = Router(context: OperationsContext.self, options: .autoGenerateHeadEndpoints)
        let tokenless = (configuration.token ?? "").isEmpty
        router.add(
            middleware: RequestGuard(
                hostPolicy: tokenless ? HostPolicy(allowedNames: configuration.allowedHosts) : nil, logger: logger))
        router.add(middleware: ErrorPageMiddleware(readOnly: configuration.readOnly))
        router.add(middleware: MethodMiddleware(listing.routes.map { ($0.path, $0.method) }))
        router.add(middleware: AccessMiddleware(token: configuration.token, keys: keys))
        for collection in collections { router.addRoutes(collection) }
        return router
    }

    // MARK: Health and metrics

    /// The body of `/health`.
    struct HealthBody: Encodable {
        var status: String
        var database: String
        var schemaVersion: Int?
        var schemaExpected: Int
        var reason: String?
        var workerID: String?
        var state: String
        var runningJobs: Int?

        enum CodingKeys: String, CodingKey {
            case status, database, reason, state
            case schemaVersion = "schema_version"
            case schemaExpected = "schema_expected"
            case workerID = "worker_id"
            case runningJobs = "running_jobs"
        }
    }

    /// `/health`, or with `readiness` `/health/ready`, which also answers 503 while the worker
    /// is not taking jobs: starting, or draining after SIGTERM (its running jobs winding down).
    func healthResponse(readiness: Bool = false) async -> Response {
        let reading = await health.check()
        let status = workerStatus()
        var healthy = reading.healthy
        var reason = reading.reason
        if readiness, let state = status?.state, state != .running {
            // The worker's state first, which is why it is not ready whatever the database
            // says; then what the database probe found, when it found something wrong.
            let why = state == .starting ? "starting: not taking jobs yet" : "\(state.rawValue): taking no new jobs"
            reason = healthy ? why : "\(why); \(reason ?? "the database is unavailable")"
            healthy = false
        }
        let body = HealthBody(
            status: healthy ? "ok" : "unavailable",
            database: reading.healthy || reading.schemaVersion != nil ? "reachable" : "unreachable",
            schemaVersion: reading.schemaVersion, schemaExpected: reading.expectedSchemaVersion,
            reason: reason, workerID: status?.workerID, state: status?.state.rawValue ?? "serving",
            runningJobs: status?.runningJobs)
        return Self.json(healthy ? .ok : .serviceUnavailable, body)
    }

    /// This process's counters and histograms, live, then the database-derived metrics, which
    /// `databaseMetrics` reuses for a few seconds.
    func metricsResponse() async -> Response {
        var buffer: [UInt8] = []
        metrics.registry.emit(into: &buffer)
        buffer += await databaseMetrics.text()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Pages

    /// Renders an HTML page or fragment with the session's CSRF token and a
    /// Content-Security-Policy that allows only our script. A browser without a session cookie
    /// of the right form gets a new session (not on fragments, which the live script fetches).
    func page(
        _ request: Request, fragment: Bool = false, _ render: (DashboardPages) async throws -> String
    ) async throws -> Response {
        let existing = try Self.cookie(Self.sessionCookie, of: request)
        let session = existing.flatMap { SessionKeys.isSessionID($0) ? $0 : nil } ?? SessionKeys.newSessionID()
        let nonce = randomToken()
        let pages = DashboardPages(
            csrf: keys.csrfToken(forSession: session), readOnly: configuration.readOnly, nonce: nonce)
        let html: String
        do {
            html = try await render(pages)
        } catch let error as HTTPError {
            throw error
        } catch {
            logger.warning("dashboard query failed", metadata: ["error": "\(error)"])
            throw HTTPError(.serviceUnavailable, message: "the database cannot be read now; try again shortly")
        }
        var response = Self.html(html, nonce: nonce)
        if existing != session && !fragment {
            response.setCookie(
                Cookie(
                    name: Self.sessionCookie, value: session, path: "/", secure: secureCookies(request), httpOnly: true,
                    sameSite: .strict))
        }
        return response
    }

    /// An HTML response with the Content-Security-Policy that allows the script with `nonce` only.
    static func html(_ html: String, nonce: String) -> Response {
        let headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            .contentSecurityPolicy:
                "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'unsafe-inline'; connect-src 'self'; "
                + "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            HTTPFields.Element.Name("X-Content-Type-Options")!: "nosniff",
            HTTPFields.Element.Name("Referrer-Policy")!: "same-origin",
        ]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Whether cookies get `Secure`: the operator said a TLS proxy is in front, or the request
    /// says it came as https. Godwit never serves TLS itself.
    func secureCookies(_ request: Request) -> Bool {
        configuration.behindTLS || request.head.scheme?.lowercased() == "https"
            || request.headers[Self.forwardedProto]?.lowercased() == "https"
            || request.headers[.origin]?.lowercased().hasPrefix("https://") == true
    }

    /// Cookie `name`, nil when absent; 400 when it comes twice.
    static func cookie(_ name: String, of request: Request) throws -> String? {
        do {
            return try RequestCookies(request).single(name)
        } catch {
            throw HTTPError(.badRequest, message: error.reason)
        }
    }

    func filter(_ request: Request) throws -> JobFilter {
        let query: [String: String]
        do {
            query = try URLEncodedForm.parse(request.uri.query ?? "")
        } catch {
            throw HTTPError(.badRequest, message: "the query string is malformed: \(error.reason)")
        }
        guard JobFilter(state: query["state"], kind: query["kind"], search: query["q"]) != nil else {
            throw HTTPError(
                .badRequest,
                message: "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard
            let filter = JobFilter(
                state: query["state"], kind: query["kind"], search: query["q"], before: query["before"],
                after: query["after"])
        else {
            throw HTTPError(
                .badRequest, message: "before and after are job ids (positive numbers), one of them at most")
        }
        return filter
    }

    static func jobID(_ context: OperationsContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw HTTPError(.badRequest, message: "a job id is a positive number")
        }
        return id
    }

    // MARK: Controls and login

    static let maximumFormSize = 8192

    /// Whether `contentType` is `application/x-www-form-urlencoded`, parameters (a charset) aside.
    static func isForm(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let media = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return media.trimmingCharacters(in: .whitespaces).lowercased() == "application/x-www-form-urlencoded"
    }

    /// A form body as fields: `application/x-www-form-urlencoded` only (415), at most 8 kB
    /// (413), arrived within `formTimeout` (408), well-formed (400).
    func form(_ request: Request) async throws -> [String: String] {
        guard Self.isForm(request.headers[.contentType]) else {
            throw HTTPError(.unsupportedMediaType, message: "a form must be sent as application/x-www-form-urlencoded")
        }
        let timeout = configuration.formTimeout
        let buffer: ByteBuffer? = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                var request = request
                do {
                    return try await request.collectBody(upTo: Self.maximumFormSize)
                } catch {
                    throw HTTPError(.contentTooLarge, message: "the form is too large")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let buffer else {
            throw HTTPError(.requestTimeout, message: "the form did not arrive within \(timeout)")
        }
        do {
            return try URLEncodedForm.parse(Array(buffer.readableBytesView))
        } catch {
            throw HTTPError(.badRequest, message: "the form is malformed: \(error.reason)")
        }
    }

    /// The form of a control's POST, once its CSRF token matches the session's; a missing or
    /// wrong token is logged (with `metadata`, naming the action) and refused with 403.
    func controlForm(
        _ request: Request, context: OperationsContext, metadata: Logger.Metadata
    ) async throws -> [String: String] {
        let fields = try await form(request)
        let session = try Self.cookie(Self.sessionCookie, of: request)
        guard let session, let sent = fields["csrf"], keys.isValidCSRF(sent, session: session) else {
            logger.warning(
                "control refused: missing or wrong CSRF token",
                metadata: metadata.merging(["remote": "\(context.remoteAddress)"]) { own, _ in own })
            throw HTTPError(.forbidden, message: "missing or wrong CSRF token: reload the page and try again")
        }
        return fields
    }

    func control(_ request: Request, context: OperationsContext) async throws -> Response {
        guard !configuration.readOnly else {
            throw HTTPError(.forbidden, message: "this dashboard is read-only (--read-only)")
        }
        let id = try Self.jobID(context)
        guard let action = context.parameters.get("action").flatMap(JobAction.init(rawValue:)) else {
            throw HTTPError(.notFound, message: "the actions are pause, resume, cancel and retry")
        }
        let fields = try await controlForm(
            request, context: context, metadata: ["action": "\(action.rawValue)", "job": "\(id)"])
        let next = fields["next"].flatMap { $0 == "/" || $0 == "/jobs/\(id)" ? $0 : nil } ?? "/jobs/\(id)"
        if action == .cancel && fields["confirm"] != "yes" {
            guard let job = try await store.job(id) else { throw HTTPError(.notFound, message: "no job \(id)") }
            return try await page(request) { pages in pages.cancelConfirmPage(job, next: next) }
        }
        let changed: Bool
        do {
            changed = try await store.control(action, job: id)
        } catch  where OperationsStore.permissionDenied(error) {
            let role = (try? await store.currentRole()) ?? "this server's role"
            logger.warning(
                "control refused by the database: the role may not control jobs",
                metadata: [
                    "remote": "\(context.remoteAddress)", "action": "\(action.rawValue)", "job": "\(id)",
                    "role": "\(role)",
                ])
            throw HTTPError(
                .forbidden,
                message: "role \(role) may not \(action.rawValue) jobs; the schema's owner can allow it with "
                    + "SELECT \(configuration.schema.qualified("grant_control"))('\(role)'), or serve with --read-only")
        } catch {
            throw HTTPError(.serviceUnavailable, message: "the database cannot be reached now")
        }
        logger.notice(
            "dashboard control",
            metadata: [
                "remote": "\(context.remoteAddress)", "action": "\(action.rawValue)", "job": "\(id)",
                "changed": "\(changed)",
            ])
        return Response(status: .seeOther, headers: [.location: next])
    }

    /// "Retry all failed": the same checks as a job's control (read-only, form, CSRF token; the
    /// Host and Origin in `RequestGuard`), then each failed job this server's role may retry,
    /// and back to the list with what was done.
    func retryFailed(_ request: Request, context: OperationsContext) async throws -> Response {
        guard !configuration.readOnly else {
            throw HTTPError(.forbidden, message: "this dashboard is read-only (--read-only)")
        }
        _ = try await controlForm(request, context: context, metadata: ["action": "retry-failed"])
        let result: (retried: Int, refused: Int)
        do {
            result = try await store.retryFailed()
        } catch {
            throw HTTPError(.serviceUnavailable, message: "the database cannot be reached now")
        }
        logger.notice(
            "dashboard control",
            metadata: [
                "remote": "\(context.remoteAddress)", "action": "retry-failed", "retried": "\(result.retried)",
                "refused": "\(result.refused)",
            ])
        return Response(
            status: .seeOther, headers: [.location: "/?retried=\(result.retried)&refused=\(result.refused)"])
    }

    /// Checks the token of the login form, at most `loginBurst` attempts at once per client
    /// address (429 after), and sets the login cookie: an expiring HMAC value, never the token.
    func login(_ request: Request, context: OperationsContext) async throws -> Response {
        guard let token = configuration.token, !token.isEmpty else {
            return Response(status: .seeOther, headers: [.location: "/"])
        }
        guard loginLimiter.attempt(context.clientAddress) else {
            let wait = max(loginLimiter.secondsUntilNextAttempt(context.clientAddress), 1)
            logger.warning("login refused: too many attempts", metadata: ["remote": "\(context.remoteAddress)"])
            throw HTTPError(
                .tooManyRequests, headers: [.retryAfter: "\(wait)"],
                message: "too many login attempts from this address; try again in \(wait) s")
        }
        let fields = try await form(request)
        guard let sent = fields["token"], constantTimeEqual(sent, token) else {
            logger.warning("login refused", metadata: ["remote": "\(context.remoteAddress)"])
            var response = try await page(request) { pages in pages.loginPage(failed: true) }
            response.status = .unauthorized
            return response
        }
        logger.notice("login", metadata: ["remote": "\(context.remoteAddress)"])
        var response = Response(status: .seeOther, headers: [.location: "/"])
        response.setCookie(
            Cookie(
                name: AccessMiddleware.cookieName, value: keys.loginCookie(), maxAge: SessionKeys.loginLifetime,
                path: "/",
                secure: secureCookies(request), httpOnly: true, sameSite: .strict))
        return response
    }
}
