import ArgumentParser
import Foundation
import GodwitHTTP
import GodwitMigrations
import GodwitQueue
import ServiceLifecycle

/// `--http`, its token, allowed host names and TLS flag, and `--read-only`, shared by `worker`
/// and `serve`.
struct HTTPOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Serve /health, /metrics and the dashboard on this address (127.0.0.1:8432 when given without one).",
            valueName: "address"))
    var http: String?

    @Option(
        help: ArgumentHelp(
            "A token every HTTP request must carry (Bearer, or the login page's cookie); needed to bind beyond "
                + "loopback. On the command line it is visible to every local user (/proc/PID/cmdline): prefer "
                + "--http-token-file or GODWIT_HTTP_TOKEN.", valueName: "token"))
    var httpToken: String?

    @Option(
        help: ArgumentHelp(
            "Read the HTTP token from this file (one line; refused unless only its owner can read it, chmod 600).",
            valueName: "path"))
    var httpTokenFile: String?

    @Option(
        name: .customLong("http-allowed-host"),
        help: ArgumentHelp(
            "Without a token, also answer requests for this host name (besides localhost, 127.0.0.1 and [::1]); "
                + "repeatable.", valueName: "name"))
    var httpAllowedHosts: [String] = []

    @Flag(help: "A TLS proxy is in front: the dashboard's cookies get Secure.")
    var httpBehindTls = false

    @Flag(help: "Hide and refuse the dashboard's pause, resume, cancel and retry controls.")
    var readOnly = false

    /// The surface's configuration, or nil without `--http` (unless `always`). The token comes
    /// from `--http-token`, `--http-token-file` or `GODWIT_HTTP_TOKEN`, in that order; giving
    /// both options is refused. `source` and `migrationConfig` are the migrations folder and
    /// sqlx.toml's settings, for the migrations page and metrics.
    func configuration(
        databaseURL: String, schema: QueueSchema, source: String?, migrationConfig: MigrationConfig = .default,
        always: Bool = false
    ) throws -> OperationsConfiguration? {
        guard http != nil || always else { return nil }
        var configuration = OperationsConfiguration(databaseURL: databaseURL)
        do {
            try configuration.setAddress(http ?? OperationsConfiguration.defaultAddress)
        } catch {
            throw ValidationError("--http: \(error)")
        }
        configuration.schema = schema
        if httpToken != nil && httpTokenFile != nil {
            throw ValidationError("give --http-token or --http-token-file, not both")
        }
        do {
            configuration.token =
                try httpToken
                ?? httpTokenFile.map {
                    try OperationsConfiguration.token(fromFile: $0, relativeTo: Console.current.directory)
                }
                ?? Console.current.environment["GODWIT_HTTP_TOKEN"]
        } catch let error as OperationsError {
            throw ValidationError(error.description)
        }
        if configuration.token?.isEmpty ?? false { configuration.token = nil }
        configuration.allowedHosts = httpAllowedHosts
        configuration.behindTLS = httpBehindTls
        configuration.readOnly = readOnly
        // The dashboard reads the folder at each request, long after the command started: by
        // its path in the working directory.
        if let source, FileManager.default.fileExists(atPath: Console.current.opened(source)) {
            configuration.migrationsDirectory = Console.current.opened(source)
        }
        configuration.migrationConfig = migrationConfig
        do {
            try configuration.validate()
        } catch let error as OperationsError {
            throw ValidationError(error.description)
        }
        return configuration
    }

    /// `--http` with no value after it (last, or followed by another option) means the default
    /// address; swift-argument-parser has no optional values, so it is filled in before parsing.
    static func withDefaultAddress(_ arguments: [String]) -> [String] {
        var out: [String] = []
        for (index, argument) in arguments.enumerated() {
            out.append(argument)
            if argument == "--http" {
                let next: String? = index + 1 < arguments.count ? arguments[index + 1] : nil
                if next.map({ $0.hasPrefix("-") }) ?? true { out.append(OperationsConfiguration.defaultAddress) }
            }
        }
        return out
    }
}

/// `godwit serve`: the dashboard, `/health` and `/metrics` without running jobs.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard, /health and /metrics without running jobs.",
        discussion: """
            A read-mostly dashboard host: the same pages and endpoints as godwit worker --http, \
            and no job runs in this process. Binds to 127.0.0.1:8432 unless --http says otherwise; \
            any other than a loopback address needs a token (--http-token-file, GODWIT_HTTP_TOKEN \
            or --http-token). Reads sqlx.toml (or --config) as migrate run does: its table-name is \
            the ledger shown, its migrations-dir the folder of pending migrations.

            Example: godwit serve --http 127.0.0.1:8432 --read-only
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queueOptions: QueueOptions
    @OptionGroup var httpOptions: HTTPOptions

    /// `--source` and `--config`, for the migrations page.
    @OptionGroup var folder: MigrationFolderOptions

    func run() async throws {
        try await withCLIErrors {
            let logger = makeLogger(queueOptions.logLevel)
            let url = try connection.resolvedURL()
            let settings = try folder.resolvedConfig()
            for warning in settings.warnings { printWarning(warning) }
            guard
                let configuration = try httpOptions.configuration(
                    databaseURL: url, schema: QueueSchema(name: queueOptions.schema),
                    source: folder.directory(in: settings), migrationConfig: settings, always: true)
            else { return }
            let server = OperationsServer(configuration: configuration, logger: logger)
            let http = server.service {
                logger.notice("serving HTTP", metadata: ["address": "\(configuration.host):\(configuration.port)"])
            }
            let services: [any Service] = [server.pool, http]
            let group = ServiceGroup(
                services: services, gracefulShutdownSignals: Console.current.handlesSignals ? [.sigterm, .sigint] : [],
                logger: logger)
            try await group.run()
        }
    }
}
