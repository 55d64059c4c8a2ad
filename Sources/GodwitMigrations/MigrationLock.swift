import GodwitPostgres
import Logging

/// The session-level advisory lock that sqlx holds while migrating.
///
/// The key is sqlx's: `0x3d32ad9e * crc32(current_database())`, so a Rust service starting up
/// with `sqlx::migrate!` and Godwit exclude each other.
///
/// Godwit never waits inside `pg_advisory_lock()`: a session blocked there sits in an open
/// transaction, and `CREATE INDEX CONCURRENTLY` in the holder's migration waits for every
/// open transaction to end, so holder and waiter would deadlock. Instead it polls
/// `pg_try_advisory_lock()` between short sleeps, with no transaction open while it sleeps.
public enum MigrationLock {
    /// sqlx's lock id for a database name.
    public static func key(forDatabase name: String) -> Int64 {
        0x3d32_ad9e * Int64(CRC32.checksum(Array(name.utf8)))
    }

    /// Takes the lock for the connection's current database, waiting as long as it takes.
    /// Logs once, naming the holder's process id, when it has to wait.
    public static func acquire(on connection: Connection, logger: Logger) async throws -> Int64 {
        let database =
            try await connection.query("SELECT pg_catalog.current_database() AS db").first?.string("db") ?? ""
        let key = key(forDatabase: database)
        var delay = Duration.milliseconds(20)
        var reported = false
        while true {
            let row = try await connection.query(
                "SELECT pg_catalog.pg_try_advisory_lock($1::pg_catalog.int8) AS locked", [key]
            ).first
            if try row?.bool("locked") == true { return key }
            if !reported {
                reported = true
                let holder = try await holderPID(key: key, on: connection)
                logger.notice(
                    "waiting for the migration lock on database \(database)",
                    metadata: ["holder_pid": holder.map { .stringConvertible($0) } ?? "unknown"])
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(500))
        }
    }

    public static func release(key: Int64, on connection: Connection) async throws {
        try await connection.query("SELECT pg_catalog.pg_advisory_unlock($1::pg_catalog.int8)", [key])
    }

    /// Releases the lock even from a cancelled task (or closes the connection, which releases
    /// it too), so that a failed or cancelled run never leaves sqlx's lock held.
    public static func releaseIgnoringCancellation(key: Int64, on connection: Connection) async {
        await connection.cleanup("SELECT pg_catalog.pg_advisory_unlock(\(key)::pg_catalog.int8)")
    }

    /// The process holding the lock, from `pg_locks` (a bigint key shows as two halves).
    static func holderPID(key: Int64, on connection: Connection) async throws -> Int? {
        let bits = UInt64(bitPattern: key)
        let row = try await connection.query(
            """
            SELECT pid FROM pg_catalog.pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND classid::pg_catalog.int8 = $1 AND objid::pg_catalog.int8 = $2
              AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
            LIMIT 1
            """, [Int64(bits >> 32), Int64(bits & 0xffff_ffff)]
        ).first
        return try row.map { try $0.int("pid") }
    }
}

/// CRC-32 (ISO-HDLC, the zlib polynomial), as sqlx uses for its lock key.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
