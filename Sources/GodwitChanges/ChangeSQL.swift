import GodwitPostgres

/// The SQL of a resolved change: start's DDL (the new columns, the sync function and trigger,
/// the NOT VALID constraints), the backfill statement, and every later step's statements.
///
/// User expressions are never rewritten: they are evaluated over the row, each wrapped in
/// parentheses and cast to its column's type, as `ChangePlan` type-checked them.
public struct ChangeSQL: Sendable {
    public let plan: ChangePlan

    public init(_ plan: ChangePlan) {
        self.plan = plan
    }

    private var table: String { plan.qualifiedTable }
    private var alias: String { quoteIdentifier(plan.tableName) }
    private var names: ChangeNames { plan.names }
    private var added: [ChangeDefinition.AddedColumn] { plan.definition.addedColumns }
    private var drops: [ChangePlan.SyncedDrop] { plan.syncedDrops }

    /// The sync function, schema-qualified and quoted.
    public var function: String { quoteIdentifier(plan.schemaName) + "." + quoteIdentifier(names.trigger) }

    // MARK: Start

    /// Start's statements, in order, for its one transaction.
    public var start: [String] {
        var statements: [String] = []
        if !added.isEmpty {
            statements.append(
                "ALTER TABLE \(table) "
                    + added.map { "ADD COLUMN \(quoteIdentifier($0.name)) \($0.type)" }.joined(separator: ", "))
            for column in plan.movedDefaults {
                statements.append("ALTER TABLE \(table) ALTER COLUMN \(quoteIdentifier(column.name)) DROP DEFAULT")
            }
            statements.append(functionDefinition)
            statements.append(
                "CREATE TRIGGER \(quoteIdentifier(names.trigger)) BEFORE INSERT OR UPDATE ON \(table) FOR EACH ROW WHEN (\(notTheBackfill)) EXECUTE FUNCTION \(function)()"
            )
        }
        for list in plan.definition.notNull {
            let column = list.names[0]
            statements.append(
                "ALTER TABLE \(table) ADD CONSTRAINT \(quoteIdentifier(names.notNullCheck(column))) CHECK (\(quoteIdentifier(column)) IS NOT NULL) NOT VALID"
            )
        }
        for check in plan.definition.checks {
            statements.append(
                "ALTER TABLE \(table) ADD \(constraint(check)) NOT VALID"
            )
        }
        for key in plan.foreignKeys {
            statements.append(
                "ALTER TABLE \(table) ADD \(constraint(key)) NOT VALID"
            )
        }
        return statements
    }

    /// The session setting that marks the backfill's own writes (`godwit.change`), and its
    /// value for this change: the change's name.
    public static let backfillSetting = "godwit.change"

    /// The trigger's `WHEN`: false only for a write made while the session's `godwit.change` is
    /// this change's name, which the backfill's statement sets (locally, for its transaction)
    /// before it writes a row. Applications never set it; a session that did would only skip
    /// the sync for its own writes, and the verification would count every row it left apart.
    var notTheBackfill: String {
        "pg_catalog.current_setting(\(quoteLiteral(Self.backfillSetting)), true) IS DISTINCT FROM \(quoteLiteral(plan.definition.name))"
    }

    /// The backfill's statement: fills each new column still NULL with its expression over
    /// the row, on the rows where that changes something, and writes nothing else.
    ///
    /// It writes the new side itself, so the sync trigger skips its writes (`notTheBackfill`):
    /// the statement's one-time filter sets `godwit.change` for its transaction before the
    /// scan writes a row (an uncorrelated subquery is an InitPlan, run once, before the first
    /// row passes the filter), so the statement is whole wherever it runs (every batch, shard
    /// and retry; by hand, as `plan` prints it), and a transaction-mode pooler sees a setting
    /// that ends with the batch's transaction. (A payload field that the batch function would
    /// apply could not be added at start: the enqueuer may not update the jobs it enqueued,
    /// and `enqueue_batched` takes no such argument.)
    ///
    /// A row that needs nothing (the application wrote it since start, or its expression is
    /// NULL) is not rewritten: no dead tuple. Under READ COMMITTED a row the application
    /// updates meanwhile is filtered again on its new version (EvalPlanQual), so a new side the
    /// application filled is kept, and `COALESCE` keeps it too.
    ///
    /// The old side is never written: a NULL old column stays NULL even where the trigger
    /// would fill it from the new side on an application's write. Such a row's new side equals
    /// its expression over the old one, which is what the verification (`disagrees`) accepts.
    ///
    /// A batched job's statement may not contain `;`: where an expression holds one (in a
    /// string), the backfill is the trigger's instead (`triggerBackfill`).
    public var backfill: String {
        if writesThroughTrigger { return triggerBackfill }
        let key = quoteIdentifier(plan.key)
        let filled = added.map { column in
            let name = quoteIdentifier(column.name)
            return "\(name) = COALESCE(\(name), (\(column.expression))::\(column.type))"
        }.joined(separator: ", ")
        let needed = added.map { column in
            "(\(quoteIdentifier(column.name)) IS NULL AND (\(column.expression))::\(column.type) IS NOT NULL)"
        }.joined(separator: " OR ")
        let mark =
            "(SELECT pg_catalog.set_config(\(quoteLiteral(Self.backfillSetting)), \(quoteLiteral(plan.definition.name)), true)) IS NOT NULL"
        return
            "UPDATE \(table) AS \(alias) SET \(filled) WHERE \(key) BETWEEN $1 AND $2 AND (\(needed)) AND \(mark)"
    }

    /// Whether the backfill leaves the filling to the trigger: an expression (or the change's
    /// name) holds a `;`, which a batched job's statement may not.
    public var writesThroughTrigger: Bool {
        added.contains { $0.expression.contains(";") } || plan.definition.name.contains(";")
    }

    /// The backfill that leaves the work to the trigger: a no-op write of the first old-side
    /// column (the key when there is none) that the trigger completes row by row; it changes
    /// neither side, so nothing fires back. It rewrites every row of the range.
    var triggerBackfill: String {
        let column = quoteIdentifier(plan.oldSide.first ?? plan.key)
        let key = quoteIdentifier(plan.key)
        return "UPDATE \(table) SET \(column) = \(column) WHERE \(key) BETWEEN $1 AND $2"
    }

    // MARK: The sync trigger

    /// `NEW."a" IS DISTINCT FROM OLD."a" OR ...` (`false` for no column).
    private func anyChanged(_ columns: [String]) -> String {
        guard !columns.isEmpty else { return "false" }
        return columns.map { "NEW.\(quoteIdentifier($0)) IS DISTINCT FROM OLD.\(quoteIdentifier($0))" }
            .joined(separator: " OR ")
    }

    /// `NEW."a" IS NOT NULL OR ...`: what an INSERT supplied (`false` for no column). A
    /// column equal to its default counts as left out, so that a version that does not know
    /// an old column with a default still writes the new side alone.
    private func anySupplied(_ columns: [String]) -> String {
        guard !columns.isEmpty else { return "false" }
        return columns.map { name in
            let column = "NEW.\(quoteIdentifier(name))"
            guard let live = plan.columns.first(where: { $0.name == name }), let value = live.defaultExpression else {
                return "\(column) IS NOT NULL"
            }
            return "(\(column) IS NOT NULL AND \(column) IS DISTINCT FROM (\(value))::\(live.type))"
        }.joined(separator: " OR ")
    }

    private func forwardVariable(_ index: Int) -> String { "godwit_new_\(index + 1)" }
    private func reverseVariable(_ index: Int) -> String { "godwit_old_\(index + 1)" }

    /// The new side as the old one computes it, and the old side as the new one computes it.
    private var forwardAgrees: String {
        added.indices.map { "NEW.\(quoteIdentifier(added[$0].name)) IS NOT DISTINCT FROM \(forwardVariable($0))" }
            .joined(separator: " AND ")
    }
    private var reverseAgrees: String {
        drops.indices.map { "NEW.\(quoteIdentifier(drops[$0].name)) IS NOT DISTINCT FROM \(reverseVariable($0))" }
            .joined(separator: " AND ")
    }

    /// `SELECT (e1)::t1, ... INTO v1, ... FROM (SELECT NEW.*) AS "media"`.
    private func select(_ expressions: [(String, String)], into variables: [String]) -> String {
        "SELECT " + expressions.map { "(\($0.0))::\($0.1)" }.joined(separator: ", ") + " INTO "
            + variables.joined(separator: ", ") + " FROM (SELECT NEW.*) AS \(alias);"
    }

    private var computeForward: String {
        select(added.map { ($0.expression, $0.type) }, into: added.indices.map(forwardVariable))
    }
    private var computeReverse: String {
        select(drops.map { ($0.expression, $0.type) }, into: drops.indices.map(reverseVariable))
    }

    /// The RAISE for a write whose two sides disagree, naming the change, the columns and the row.
    private var refusal: String {
        let newSide = added.map(\.name).joined(separator: ", ")
        let oldSide = (drops.isEmpty ? plan.oldSide : drops.map(\.name)).joined(separator: ", ")
        func escaped(_ text: String) -> String { text.replacingOccurrences(of: "%", with: "%%") }
        let before = escaped(
            "change \(plan.definition.name): this write sets both sides of the change and they disagree (new: \(newSide); old: \(oldSide)) for \(plan.key) = "
        )
        let after = escaped("; write one side only, or both consistently")
        return
            "RAISE EXCEPTION \(quoteLiteral(before + "%" + after)), NEW.\(quoteIdentifier(plan.key)) USING ERRCODE = '23514';"
    }

    /// For an INSERT that did not write the new side: each moved default (`ChangePlan.movedDefaults`)
    /// applied to its column left NULL, as the column's own default would have been, so that the
    /// old version can still leave the column out. An INSERT that wrote the new side gets the old
    /// side from it instead.
    private var applyMovedDefaults: String {
        let moved = plan.movedDefaults
        guard !moved.isEmpty else { return "        NULL;" }
        let sets = moved.map { column -> String in
            let name = "NEW.\(quoteIdentifier(column.name))"
            return
                "            IF \(name) IS NULL THEN \(name) := (\(column.storedDefault ?? "NULL"))::\(column.type); END IF;"
        }
        return "        IF NOT godwit_new_changed THEN\n" + sets.joined(separator: "\n") + "\n        END IF;"
    }

    /// The plpgsql function of the sync trigger (see the contract's semantics): the direction
    /// comes from what the statement wrote (`IS DISTINCT FROM` the old row), never from the
    /// session. Column names win over the function's variables (`#variable_conflict use_column`).
    public var functionDefinition: String {
        let newColumns = added.map(\.name)
        let oldColumns = plan.oldSide
        var body = """
            #variable_conflict use_column
            DECLARE
                godwit_old_changed boolean;
                godwit_new_changed boolean;

            """
        for (index, column) in added.enumerated() { body += "    \(forwardVariable(index)) \(column.type);\n" }
        for (index, drop) in drops.enumerated() { body += "    \(reverseVariable(index)) \(drop.type);\n" }
        // An unchanged new column still NULL (a row the backfill has not reached) is filled
        // before the reverse direction reads it.
        let fillNew = added.indices.map {
            let column = quoteIdentifier(added[$0].name)
            return
                "        IF NEW.\(column) IS NULL AND \(forwardVariable($0)) IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.\(column) IS NULL) THEN NEW.\(column) := \(forwardVariable($0)); END IF;"
        }.joined(separator: "\n")
        let setNew = added.indices.map { "        NEW.\(quoteIdentifier(added[$0].name)) := \(forwardVariable($0));" }
            .joined(separator: "\n")
        let setOld = drops.indices.map { "        NEW.\(quoteIdentifier(drops[$0].name)) := \(reverseVariable($0));" }
            .joined(separator: "\n")
        let fillNullNew = added.indices.map {
            let column = quoteIdentifier(added[$0].name)
            return
                "        IF NEW.\(column) IS NULL AND \(forwardVariable($0)) IS NOT NULL THEN NEW.\(column) := \(forwardVariable($0)); END IF;"
        }.joined(separator: "\n")
        let fillNullOld = drops.indices.map {
            let column = quoteIdentifier(drops[$0].name)
            return
                "        IF NEW.\(column) IS NULL AND \(reverseVariable($0)) IS NOT NULL THEN NEW.\(column) := \(reverseVariable($0)); END IF;"
        }.joined(separator: "\n")
        // Each expression is evaluated only where its value is used: a row both sides of which
        // are filled (the backfill's second pass, an ORM's save of unchanged values) costs none.
        func anyNull(_ columns: [String]) -> String {
            columns.map { "NEW.\(quoteIdentifier($0)) IS NULL" }.joined(separator: " OR ")
        }
        let onlyOld = "        \(computeForward)\n\(setNew)"
        let onlyNew: String
        if !drops.isEmpty {
            onlyNew =
                "        IF \(anyNull(newColumns)) THEN\n        \(computeForward)\n\(fillNew)\n        END IF;\n        \(computeReverse)\n\(setOld)"
        } else if oldColumns.isEmpty {
            onlyNew = "        NULL;"
        } else {
            onlyNew =
                "        \(computeForward)\n        IF NOT (\(forwardAgrees)) THEN\n            \(refusal)\n        END IF;"
        }
        let both =
            drops.isEmpty
            ? "        \(computeForward)\n        IF NOT (\(forwardAgrees)) THEN\n            \(refusal)\n        END IF;"
            : "        \(computeForward)\n        \(computeReverse)\n        IF NOT ((\(forwardAgrees)) OR (\(reverseAgrees))) THEN\n            \(refusal)\n        END IF;"
        var neither =
            "        IF \(anyNull(newColumns)) THEN\n        \(computeForward)\n\(fillNullNew)\n        END IF;"
        if !drops.isEmpty {
            neither +=
                "\n        IF \(anyNull(drops.map(\.name))) THEN\n        \(computeReverse)\n\(fillNullOld)\n        END IF;"
        }
        body += """
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    godwit_new_changed := \(anySupplied(newColumns));
            \(applyMovedDefaults)
                    godwit_old_changed := \(anySupplied(oldColumns));
                ELSE
                    godwit_old_changed := \(anyChanged(oldColumns));
                    godwit_new_changed := \(anyChanged(newColumns));
                END IF;
                IF godwit_old_changed AND NOT godwit_new_changed THEN
            \(onlyOld)
                ELSIF godwit_new_changed AND NOT godwit_old_changed THEN
            \(onlyNew)
                ELSIF godwit_old_changed AND godwit_new_changed THEN
            \(both)
                ELSE
            \(neither)
                END IF;
                RETURN NEW;
            END

            """
        return """
            CREATE FUNCTION \(function)() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, \(quoteIdentifier(plan.schemaName)), pg_temp AS \(dollarQuote("\n" + body))
            """
    }

    // MARK: The statements of later steps

    /// True when a row's two sides disagree, over the table's bare columns.
    public var disagrees: String {
        guard !added.isEmpty else { return "false" }
        let forward = added.map {
            "\(quoteIdentifier($0.name)) IS NOT DISTINCT FROM ((\($0.expression))::\($0.type))"
        }.joined(separator: " AND ")
        guard !drops.isEmpty else { return "NOT (\(forward))" }
        let reverse = drops.map {
            "\(quoteIdentifier($0.name)) IS NOT DISTINCT FROM ((\($0.expression))::\($0.type))"
        }.joined(separator: " AND ")
        return "NOT ((\(forward)) OR (\(reverse)))"
    }

    /// A CHECK directive's constraint, as start adds it (NOT VALID) and the folded migration
    /// adds it (validated at once): one spelling for both.
    private func constraint(_ check: ChangeDefinition.Check) -> String {
        "CONSTRAINT \(quoteIdentifier(check.name)) CHECK (\(check.expression))"
    }

    /// A foreign-key directive's constraint, for start and the folded migration alike.
    private func constraint(_ key: ChangePlan.ResolvedForeignKey) -> String {
        "CONSTRAINT \(quoteIdentifier(names.foreignKey(key.column))) FOREIGN KEY (\(quoteIdentifier(key.column))) REFERENCES \(key.referencedTable) (\(quoteIdentifier(key.referencedColumn)))"
    }

    private func columnList(_ columns: [String]) -> String { columns.map(quoteIdentifier).joined(separator: ", ") }

    public var statements: ChangeStatements {
        let definition = plan.definition
        let indexes = definition.indexes.map { list in
            let name = names.index(list.names)
            return ChangeStatements.Index(
                name: name,
                create: "CREATE INDEX CONCURRENTLY \(quoteIdentifier(name)) ON \(table) (\(columnList(list.names)))")
        }
        let uniques = definition.uniques.map { list in
            let name = names.unique(list.names)
            return ChangeStatements.Unique(
                name: name,
                create:
                    "CREATE UNIQUE INDEX CONCURRENTLY \(quoteIdentifier(name)) ON \(table) (\(columnList(list.names)))",
                attach:
                    "ALTER TABLE \(table) ADD CONSTRAINT \(quoteIdentifier(name)) UNIQUE USING INDEX \(quoteIdentifier(name))"
            )
        }
        let validated =
            definition.notNull.map { names.notNullCheck($0.names[0]) } + definition.checks.map(\.name)
            + plan.foreignKeys.map { names.foreignKey($0.column) }
        let validate = validated.map { "ALTER TABLE \(table) VALIDATE CONSTRAINT \(quoteIdentifier($0))" }

        var complete: [String] = []
        var abort: [String] = []
        if !added.isEmpty {
            complete.append("DROP TRIGGER \(quoteIdentifier(names.trigger)) ON \(table)")
            complete.append("DROP FUNCTION \(function)()")
            abort.append("DROP TRIGGER IF EXISTS \(quoteIdentifier(names.trigger)) ON \(table)")
            abort.append("DROP FUNCTION IF EXISTS \(function)()")
            for column in plan.movedDefaults {
                abort.append(
                    "ALTER TABLE \(table) ALTER COLUMN \(quoteIdentifier(column.name)) SET DEFAULT \(column.storedDefault ?? "NULL")"
                )
            }
        }
        for list in definition.notNull {
            let column = quoteIdentifier(list.names[0])
            let check = quoteIdentifier(names.notNullCheck(list.names[0]))
            complete.append("ALTER TABLE \(table) ALTER COLUMN \(column) SET NOT NULL")
            complete.append("ALTER TABLE \(table) DROP CONSTRAINT \(check)")
        }
        for dropped in definition.droppedColumns {
            complete.append("ALTER TABLE \(table) DROP COLUMN \(quoteIdentifier(dropped.name))")
        }
        let constraints = validated + uniques.map(\.name)
        for name in constraints {
            abort.append("ALTER TABLE \(table) DROP CONSTRAINT IF EXISTS \(quoteIdentifier(name))")
        }
        for name in indexes.map(\.name) + uniques.map(\.name) {
            abort.append("DROP INDEX IF EXISTS \(quoteIdentifier(plan.schemaName)).\(quoteIdentifier(name))")
        }
        if !added.isEmpty {
            abort.append(
                "ALTER TABLE \(table) "
                    + added.map { "DROP COLUMN IF EXISTS \(quoteIdentifier($0.name))" }.joined(separator: ", "))
        }
        return ChangeStatements(
            table: table, key: quoteIdentifier(plan.key), disagrees: disagrees, indexes: indexes, uniques: uniques,
            validate: validate, complete: complete, abort: abort, migration: migration,
            dropped: definition.droppedColumns.map(\.name), backfill: plan.syncs ? backfill : nil)
    }

    /// The change's end state as one plain migration: add, fill, constraints, drop.
    public var migration: String {
        let definition = plan.definition
        var lines = ["-- godwit change \(definition.name): its end state, folded into one migration."]
        if !added.isEmpty {
            lines.append(
                "ALTER TABLE \(table) "
                    + added.map { "ADD COLUMN \(quoteIdentifier($0.name)) \($0.type)" }.joined(separator: ", ") + ";")
            lines.append(
                "UPDATE \(table) AS \(alias) SET "
                    + added.map { "\(quoteIdentifier($0.name)) = (\($0.expression))::\($0.type)" }.joined(
                        separator: ", ") + ";")
        }
        for check in definition.checks {
            lines.append(
                "ALTER TABLE \(table) ADD \(constraint(check));")
        }
        for key in plan.foreignKeys {
            lines.append(
                "ALTER TABLE \(table) ADD \(constraint(key));"
            )
        }
        for list in definition.notNull {
            lines.append("ALTER TABLE \(table) ALTER COLUMN \(quoteIdentifier(list.names[0])) SET NOT NULL;")
        }
        for list in definition.indexes {
            lines.append(
                "CREATE INDEX \(quoteIdentifier(names.index(list.names))) ON \(table) (\(columnList(list.names)));")
        }
        for list in definition.uniques {
            lines.append(
                "ALTER TABLE \(table) ADD CONSTRAINT \(quoteIdentifier(names.unique(list.names))) UNIQUE (\(columnList(list.names)));"
            )
        }
        for dropped in definition.droppedColumns {
            lines.append("ALTER TABLE \(table) DROP COLUMN \(quoteIdentifier(dropped.name));")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
