import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue

/// How the operations surface (`/health`, `/metrics`, the dashboard) is served.
public struct OperationsConfiguration: Sendable {
    /// The address to bind, `127.0.0.1` unless told otherwise.
    public var host = "127.0.0.1"
    public var port = 8432
    /// The database to read and control; never shown on a page.
    public var databaseURL: String
    public var schema = QueueSchema()
    /// When set, every request needs it (`Authorization: Bearer TOKEN` or the login cookie).
    public var token: String?
    /// Host names a server without a token answers besides localhost, 127.0.0.0/8 and [::1]
    /// (`--http-allowed-host`): a name in /etc/hosts, or what a proxy on this machine passes on.
    public var allowedHosts: [String] = []
    /// The operator says a TLS proxy is in front (`--http-behind-tls`): cookies get `Secure`.
    /// Godwit itself never serves TLS; without this, `Secure` is set when the request says it
    /// came as https (`X-Forwarded-Proto: https`, or an `https://` Origin).
    public var behindTLS = false
    /// Hides the pause, resume, cancel and retry buttons and refuses their POSTs.
    public var readOnly = false
    /// Hummingbird's idle timeout, which is also the header timeout: its timer is reset only by
    /// a complete request head or body part, so a head that trickles in is cut off at this too.
    /// Hummingbird has no separate header timeout; a form's body has `formTimeout`.
    public var idleTimeout: Duration = .seconds(30)
    /// How long a form's body may take to arrive once its head has (408 after).
    public var formTimeout: Duration = .seconds(10)
    /// Connections open at once; more wait in the listen backlog until one closes.
    public var maximumConnections = 64
    /// `POST /login` per client address: this many attempts at once, then one per interval.
    public var loginBurst = 5
    public var loginInterval: Duration = .seconds(12)
    /// The migrations folder, to list pending migrations; without it only applied ones show.
    public var migrationsDirectory: String?
    /// sqlx.toml's settings (`--config`, else ./sqlx.toml): the ledger's `table-name` and the
    /// `ignored-chars` that make the checksums, so the pages and `/metrics` read the ledger that
    /// `migrate run` writes.
    public var migrationConfig: MigrationConfig = .default
    /// The job kinds that get a label of their own in metrics; any other kind counts as `other`,
    /// so a hand-inserted job cannot add series. `batched_parallel` is a split job's parent.
    public var knownKinds: [JobKind] = JobKind.shipped
    /// How long the database-derived metrics are reused between scrapes, at least; a read that
    /// takes long is reused for 20 times as long as it took, so scraping never costs the
    /// database more than a twentieth of one session's time however large the jobs table grows.
    /// Zero reads at every scrape.
    public var metricsReadInterval: Duration = .seconds(5)
    /// How long a fleet enqueue run's backfill progress, read from every target's own queue, is
    /// reused by its page, at least (see `FleetProgressCache`). Zero reads at every request.
    public var fleetProgressReadInterval: Duration = .seconds(5)
    /// How long the health probe waits for the database before it answers 503.
    public var healthTimeout: Duration = .milliseconds(800)
    /// How long a health reading is reused.
    public var healthCacheDuration: Duration = .seconds(1)

    public init(databaseURL: String) {
        self.databaseURL = databaseURL
    }

    /// The default address of `--http` given without one.
    public static let defaultAddress = "127.0.0.1:8432"

    /// Parses `HOST:PORT`, `:PORT`, `PORT` or `[IPv6]:PORT` into `host` and `port`.
    public mutating func setAddress(_ address: String) throws {
        var text = address.trimmingCharacters(in: .whitespaces)
        if text.isEmpty { text = Self.defaultAddress }
        var host = "127.0.0.1"
        var portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw AddressError(address) }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw AddressError(address) }
            portText = String(rest.dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            let hostPart = String(text[..<colon])
            if !hostPart.isEmpty { host = hostPart }
            portText = String(text[text.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.contains(" ") else {
            throw AddressError(address)
        }
        self.host = host
        self.port = port
    }

    /// Whether `host` reaches this machine only: `localhost`, or an IP literal in 127.0.0.0/8 or
    /// ::1. A name such as `127.attacker.example` is not: DNS can point it anywhere.
    public var bindsLoopback: Bool {
        HostPolicy.isLoopback(host)
    }

    /// Refuses a non-loopback address without a token: the controls would be open to the network.
    public func validate() throws {
        if !bindsLoopback && (token ?? "").isEmpty {
            throw OperationsError(
                "refusing to serve HTTP on \(host):\(port) without a token: set --http-token-file, GODWIT_HTTP_TOKEN "
                    + "or --http-token, or bind to 127.0.0.1")
        }
        if let token, !token.isEmpty, token.count < 16 {
            throw OperationsError("the HTTP token must be at least 16 characters long")
        }
        for name in allowedHosts where !HostPolicy.isValidName(name) {
            throw OperationsError(
                "--http-allowed-host \"\(name)\" is not a host name: give the name alone, without a port")
        }
    }

    /// The token in the file at `path` (`--http-token-file`), without its line break.
    /// Refused, as libpq refuses such a .pgpass, when group or others have any access to it.
    /// A relative `path` is opened inside `base`, and named as given.
    public static func token(fromFile path: String, relativeTo base: WorkingDirectory = .process) throws -> String {
        let opened = base.resolve(path)
        var status = stat()
        guard stat(opened, &status) == 0 else {
            throw OperationsError("--http-token-file \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw OperationsError("--http-token-file \(path): not a regular file")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw OperationsError(
                "--http-token-file \(path): group or others can access it (mode \(String(status.st_mode & 0o777, radix: 8))); "
                    + "run chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: opened), let text = String(data: data, encoding: .utf8)
        else {
            throw OperationsError("--http-token-file \(path): cannot be read as UTF-8 text")
        }
        let token = text.trimmingCharacters(in: .newlines)
        guard !token.isEmpty else { throw OperationsError("--http-token-file \(path): the file is empty") }
        guard !token.contains(where: \.isNewline) else {
            throw OperationsError("--http-token-file \(path): the token must be one line")
        }
        return token
    }
}

/// A configuration the surface cannot run with; the message says what to change.
public struct OperationsError: GodwitError {
    public var description: String
    public var code: String { "invalidConfiguration" }
    public init(_ description: String) { self.description = description }
}

struct AddressError: Error, CustomStringConvertible {
    var address: String
    init(_ address: String) { self.address = address }
    var description: String { "\"\(address)\" is not an address: write HOST:PORT, such as 127.0.0.1:8432" }
}
