import GodwitPostgres

/// A batched statement must compare its key under the key's own collation.
///
/// The worker finds each batch's bounds in the key's order, under its column's collation. A
/// statement that says `k COLLATE "en-x-icu" BETWEEN $1 AND $2` on a `"C"` key picks the rows
/// between the same bounds in another order: batches overlap (rows changed twice) and leave
/// gaps (rows never changed). Such a `COLLATE`, on the key or on `$1`/`$2`, is refused, at
/// enqueue and again before every attempt. Collations are compared by what they sort by
/// (provider and locale), so `COLLATE "C"` on a key whose collation is the database's default
/// `C` passes. A mismatch hidden in a function or a view is beyond a lexical check;
/// docs/batched.md says so.
enum KeyCollation {
    struct Mismatch: Error {
        var message: String
        /// The line of the `COLLATE` in the statement, 1-based.
        var line: Int
    }

    /// Throws `Mismatch` when `statement` compares `key` of `relation` (quoted, as
    /// `batched_target` returns it) under another collation.
    static func check(statement: String, key: String, relation: String, on connection: Connection) async throws {
        for clause in CollateClause.all(in: statement)
        where clause.operand == key || clause.operand == "$1" || clause.operand == "$2" {
            let row = try await connection.query(
                """
                WITH db AS (
                    SELECT d.datlocprovider AS provider,
                        CASE WHEN d.datlocprovider = 'i' THEN d.daticulocale ELSE d.datcollate END AS locale
                    FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
                ),
                sorts AS (
                    SELECT c.oid, c.collname,
                        CASE WHEN c.collprovider = 'd' THEN db.provider ELSE c.collprovider END AS provider,
                        CASE WHEN c.collprovider = 'd' THEN db.locale WHEN c.collprovider = 'i' THEN c.colliculocale
                            ELSE c.collcollate END AS locale
                    FROM pg_catalog.pg_collation c, db
                )
                SELECT k.collname::text AS key_collation,
                    EXISTS (SELECT 1 FROM sorts s WHERE s.collname = $3 AND s.provider = k.provider
                            AND s.locale IS NOT DISTINCT FROM k.locale) AS same
                FROM pg_catalog.pg_attribute a JOIN sorts k ON k.oid = a.attcollation
                WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname = $2
                """, [relation, key, clause.collation]
            ).first
            guard let row, !(try row.bool("same")) else { continue }
            let what = clause.operand == key ? "the key \(key)" : "\(clause.operand ?? "?") (a bound of the batch)"
            throw Mismatch(
                message:
                    "the statement compares \(what) under collation \"\(clause.collation)\", not the key's own (\"\(try row.string("key_collation"))\"): "
                    + "batches are found in the key's order, so under another they would overlap and skip rows; drop the COLLATE",
                line: clause.line)
        }
    }
}
