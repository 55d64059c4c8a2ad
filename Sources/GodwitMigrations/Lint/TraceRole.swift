import Crypto
import Foundation
import GodwitPostgres

/// The role the trace runs the migrations as: made for one lint, the owner of the scratch
/// database and of everything in it, and of nothing else.
///
/// The migrations linted may come from anyone (a pull request, in CI), and what they do outside
/// the transaction survives its rollback: `COPY ... TO PROGRAM` runs a command as the server's
/// operating-system user, `lo_export` writes a file, `dblink_exec` commits elsewhere. Run with
/// the caller's rights, often a superuser's, a lint would be code execution on the database
/// host. `SET ROLE` in the caller's own session would not do: a migration can say `RESET ROLE`
/// and be the caller again. So the trace's session **logs in** as this role. Its session user
/// is the role, there is no other identity to go back to, and a role that is not a superuser
/// cannot `SET SESSION AUTHORIZATION` or `SET ROLE` to a role it is not a member of.
///
/// The role is `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS`
/// and a member of no role, so not of `pg_execute_server_program`, `pg_read_server_files`,
/// `pg_write_server_files` or `pg_signal_backend`; the session checks that once logged in. It
/// owns the scratch database, and the schema copy's objects are handed to it one by one
/// (`ALTER ... OWNER TO`), so that migrations alter them as their owner would and a `SECURITY
/// DEFINER` function of the copy runs as the role. What only a superuser may own (event
/// triggers, foreign-data wrappers) and the members of extensions stay the caller's; a
/// migration that alters them fails its statement in the trace, which says so in a note.
///
/// The password is random, never printed, valid for an hour (a role left behind by a killed
/// process soon cannot log in), and sent to the server only as a SCRAM-SHA-256 verifier, so
/// that no server log holds it; libpq gets it in the conninfo of the one session, whose errors
/// `Connection` scrubs of it. The server's `pg_hba.conf` decides how the role may log in: a
/// password method (`scram-sha-256`, `md5`, `password`) or `trust` work; a server that allows
/// neither for it (only `peer` or `cert`) makes the lint fail with one line that says so.
///
/// Making the role takes a superuser, or `CREATEROLE`; a caller that has neither is refused
/// before anything is created (see ``MigrationTrace``). The role is named like the scratch
/// database (`godwit_lint_<pid>_<random>`) and dropped after it, also when the lint fails.
struct TraceRole: Sendable {
    let name: String
    /// Never printed, never sent to the server in clear.
    private let password: String

    init(name: String) {
        self.name = name
        var generator = SystemRandomNumberGenerator()
        password = (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }

    var quoted: String { quoteIdentifier(name) }

    /// Creates the role on the target's server. A caller that is not a superuser is made a
    /// member of it (never the other way round), which PostgreSQL requires to hand objects
    /// and the database to it and lets the caller drop the database afterwards. Leaves nothing
    /// behind when it throws.
    func create(on target: Connection) async throws {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = generator.next() }
        let validUntil = try await target.query("SELECT (now() + interval '1 hour')::text AS t").first?.string("t")
        do {
            try await target.execute(
                """
                CREATE ROLE \(quoted) LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS
                    PASSWORD \(quoteLiteral(Self.scramVerifier(password: password, salt: salt)))
                    VALID UNTIL \(quoteLiteral(validUntil ?? "infinity"))
                """)
        } catch let error as PostgresError {
            throw MigrationError(
                .execution,
                "migrate lint cannot create the role it runs the migrations as: \(error)", underlying: error)
        }
        do {
            let superuser =
                try await target.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?
                .bool("rolsuper") ?? false
            if !superuser { try await target.execute("GRANT \(quoted) TO CURRENT_USER") }
        } catch {
            await drop(on: target)
            throw error
        }
    }

    /// Hands the scratch database, and every object the schema copy made in it, to the role.
    func takeOver(database: String, scratchURL: String, target: Connection) async throws {
        try await target.execute("ALTER DATABASE \(quoteIdentifier(database)) OWNER TO \(quoted)")
        try await Connection.withConnection(scratchURL) { connection in
            try await connection.execute(takeOverSQL)
        }
    }

    /// Every object of the scratch database (oid above the bootstrap ones, and schema public)
    /// that has an owner of its own: not an extension's member, not a part of another object
    /// (an array or row type, a multirange, a sequence owned by a column: they follow their
    /// object). Each `ALTER ... OWNER TO` that PostgreSQL refuses (an event trigger's owner
    /// must be a superuser) leaves that object as it was.
    private var takeOverSQL: String {
        """
        DO $godwit$
        DECLARE
            object record;
        BEGIN
            FOR object IN
                WITH candidates (classid, objid) AS (
                    SELECT 'pg_namespace'::regclass, oid FROM pg_namespace
                    WHERE (oid >= 16384 OR nspname = 'public') AND nspname NOT LIKE 'pg\\_%'
                    UNION ALL SELECT 'pg_class'::regclass, oid FROM pg_class
                    WHERE oid >= 16384 AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                    UNION ALL SELECT 'pg_type'::regclass, oid FROM pg_type WHERE oid >= 16384 AND typtype <> 'p'
                    UNION ALL SELECT 'pg_proc'::regclass, oid FROM pg_proc WHERE oid >= 16384
                    UNION ALL SELECT 'pg_collation'::regclass, oid FROM pg_collation WHERE oid >= 16384
                    UNION ALL SELECT 'pg_conversion'::regclass, oid FROM pg_conversion WHERE oid >= 16384
                    UNION ALL SELECT 'pg_operator'::regclass, oid FROM pg_operator WHERE oid >= 16384
                    UNION ALL SELECT 'pg_opclass'::regclass, oid FROM pg_opclass WHERE oid >= 16384
                    UNION ALL SELECT 'pg_opfamily'::regclass, oid FROM pg_opfamily WHERE oid >= 16384
                    UNION ALL SELECT 'pg_ts_dict'::regclass, oid FROM pg_ts_dict WHERE oid >= 16384
                    UNION ALL SELECT 'pg_ts_config'::regclass, oid FROM pg_ts_config WHERE oid >= 16384
                    UNION ALL SELECT 'pg_statistic_ext'::regclass, oid FROM pg_statistic_ext WHERE oid >= 16384
                    UNION ALL SELECT 'pg_foreign_server'::regclass, oid FROM pg_foreign_server WHERE oid >= 16384
                    UNION ALL SELECT 'pg_language'::regclass, oid FROM pg_language WHERE oid >= 16384
                    UNION ALL SELECT 'pg_publication'::regclass, oid FROM pg_publication WHERE oid >= 16384
                    UNION ALL SELECT 'pg_event_trigger'::regclass, oid FROM pg_event_trigger WHERE oid >= 16384
                )
                SELECT o.type, o.identity
                FROM candidates c, pg_identify_object(c.classid, c.objid, 0) o
                WHERE NOT EXISTS (
                    SELECT FROM pg_depend d
                    WHERE d.classid = c.classid AND d.objid = c.objid AND d.objsubid = 0
                      AND (d.deptype IN ('e', 'i') OR (o.type = 'sequence' AND d.deptype = 'a'))
                )
            LOOP
                BEGIN
                    EXECUTE format('ALTER %s %s OWNER TO %I',
                        CASE object.type
                            WHEN 'statistics object' THEN 'STATISTICS'
                            WHEN 'composite type' THEN 'TYPE'
                            ELSE upper(object.type)
                        END,
                        object.identity, \(quoteLiteral(name)));
                EXCEPTION WHEN OTHERS THEN
                    NULL;
                END;
            END LOOP;
        END
        $godwit$
        """
    }

    /// Opens the trace's session, logged in as the role, to `database` on the target's server
    /// (its host, port and TLS settings; its user, password and `options` are not used), runs
    /// `body`, and closes it.
    func withSession<T>(
        targetURL: String, database: String, _ body: (Connection) async throws -> T
    ) async throws -> T {
        var options = try ConnectionString.options(targetURL)
        options["dbname"] = database
        options["user"] = name
        options["password"] = password
        options["options"] = nil
        options["passfile"] = nil
        let conninfo = options.sorted { $0.key < $1.key }
            .map { "\($0.key)=\(ClientProgram.conninfoQuoted($0.value))" }
            .joined(separator: " ")
        let connection: Connection
        do {
            connection = try await Connection.connect(conninfo, applicationName: "godwit migrate lint")
        } catch let error as PostgresError {
            throw MigrationError(
                .execution,
                "migrate lint runs the migrations as a role of its own, \(quoted), which could not log in to its scratch database: \(error.message); let such roles log in with a password (a scram-sha-256 or md5 line in pg_hba.conf for this host), or lint without a database for the static rules only",
                underlying: error)
        }
        do {
            try await checkIdentity(of: connection)
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Refuses a session that is not the role, or in which the role has more than it was
    /// given: belt and braces, since the role was made with none of it a moment ago.
    private func checkIdentity(of connection: Connection) async throws {
        let row = try await connection.query(
            """
            SELECT session_user::text AS session, current_user::text AS current,
                   r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls AS powerful,
                   EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid) AS member
            FROM pg_roles r WHERE r.rolname = session_user
            """
        ).first
        guard let row, try row.string("session") == name, try row.string("current") == name,
            try !row.bool("powerful"), try !row.bool("member")
        else {
            throw MigrationError(
                .execution,
                "migrate lint: the session for the migrations is not the restricted role \(quoted) it should be, so nothing was run"
            )
        }
    }

    /// Drops the role; errors are not thrown (the caller is already failing, or done).
    func drop(on target: Connection) async {
        await target.cleanup("DROP ROLE IF EXISTS \(quoted)")
    }

    /// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, 7677; the
    /// format of `pg_authid.rolpassword`): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    /// The password is ASCII, so SASLprep leaves it as it is.
    static func scramVerifier(password: String, salt: [UInt8], iterations: Int = 4096) -> String {
        // PBKDF2-HMAC-SHA-256 with one block, as long as the hash.
        let key = SymmetricKey(data: Array(password.utf8))
        var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var salted = block
        for _ in 1..<iterations {
            block = Array(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for index in salted.indices { salted[index] ^= block[index] }
        }
        let saltedKey = SymmetricKey(data: salted)
        let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: saltedKey))
        let storedKey = Array(SHA256.hash(data: clientKey))
        let serverKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: saltedKey))
        func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
        return "SCRAM-SHA-256$\(iterations):\(base64(salt))$\(base64(storedKey)):\(base64(serverKey))"
    }
}
