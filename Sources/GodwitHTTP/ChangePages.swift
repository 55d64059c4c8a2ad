import Foundation
import GodwitChanges

/// The changes page (one line a zero-downtime column change) and one change's page (what it
/// builds, the reader evidence, whether complete would pass). Every value from the database
/// goes through `HTML.escape`, a change's name in a link through `HTML.queryEscape` first.
extension DashboardPages {
    func changesPage(_ changes: [ChangeSummary]) -> String {
        let body = """
            <h1>Changes</h1>
            <p class="note">Zero-downtime column changes (<code>godwit change</code>). Deploy the version that reads \
            the new columns once a change is ready: before, rows the backfill has not reached have NULL in them.</p>
            <div class="scroll"><table id="changes" class="changes"><thead><tr><th>Name</th><th class="opt">Table</th>\
            <th>Phase</th><th>Backfill</th><th class="opt num">Disagreeing</th><th>Ready</th><th>Blocked by</th></tr></thead>
            <tbody data-live="/fragments/changes">\(changeRows(changes))</tbody></table></div>
            """
        return layout(title: "Changes", active: "changes", body: body)
    }

    /// The list's rows, or one saying there is no change.
    func changeRows(_ changes: [ChangeSummary]) -> String {
        if changes.isEmpty { return "<tr><td colspan=\"7\" class=\"empty\">No changes.</td></tr>" }
        return changes.map { change in
            """
            <tr data-change="\(HTML.escape(change.name))"><td class="name"><a href="\(changeLink(change.name))">\(HTML.escape(change.name))</a></td>\
            <td class="opt"><code>\(HTML.escape(change.table))</code></td><td>\(phaseTag(change.phase))</td>\
            <td class="progress">\(changeProgress(change))</td>\
            <td class="opt num">\(change.disagreeingRows.map(String.init) ?? "")</td><td>\(change.ready ? "yes" : "no")</td>\
            <td class="note">\(HTML.escape(change.blockedBy.joined(separator: "; ")))</td></tr>
            """
        }.joined(separator: "\n")
    }

    /// `/change?name=...`, HTML-escaped for an attribute.
    func changeLink(_ name: String) -> String { HTML.escape("/change?name=" + HTML.queryEscape(name)) }

    func phaseTag(_ phase: String) -> String {
        // The dashboard's state colours: in progress, done, stopped.
        let style =
            switch ChangePhase(rawValue: phase) {
            case .expanding?, .backfilling?, .verifying?, .completing?: "running"
            case .ready?, .completed?: "succeeded"
            case .aborted?: "cancelled"
            default: ""
            }
        return "<span class=\"state \(style)\" data-phase=\"\(HTML.escape(phase))\">\(HTML.escape(phase))</span>"
    }

    /// A bar and the backfill's rows done of rows total.
    func changeProgress(_ change: ChangeSummary) -> String {
        let percent = change.percent ?? 0
        let total = change.rowsTotal.map(String.init) ?? "?"
        return """
            <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="\(String(format: "%.1f", percent))">\
            <span style="width:\(String(format: "%.1f", percent))%"></span></div>\
            <small>\(change.rowsDone) / \(total) rows</small>
            """
    }

    func changePage(_ details: ChangeDetails) -> String {
        let body = """
            <p><a href="/changes">← Changes</a></p>
            <section data-live="/fragments/change?name=\(HTML.escape(HTML.queryEscape(details.summary.name)))">\(changeDetail(details))</section>
            """
        return layout(title: details.summary.name, active: "changes", body: body)
    }

    /// One change's facts, what it builds, the reader evidence, whether complete would pass,
    /// and its file.
    func changeDetail(_ details: ChangeDetails) -> String {
        let change = details.summary
        var facts: [(String, String)] = [
            ("Phase", phaseTag(change.phase)), ("Table", "<code>\(HTML.escape(change.table))</code>"),
            ("Key", HTML.escape(change.keyColumn)), ("Backfill", changeProgress(change)),
            (
                "Backfill job",
                change.backfillJobID.map {
                    "<a href=\"/jobs/\($0)\">#\($0)</a> \(HTML.escape(change.backfillState ?? ""))"
                }
                    ?? ""
            ),
            ("Verified rows", "\(change.verifiedRows)"),
            ("Disagreeing rows", change.disagreeingRows.map(String.init) ?? "not verified yet"),
            ("Started", "\(HTML.escape(change.startedAt)) by \(HTML.escape(change.startedBy))"),
            ("File", "<code>\(HTML.escape(change.file))</code>"),
        ]
        for (label, value) in [
            ("Verified", change.verifiedAt), ("Indexes built", change.indexesBuiltAt),
            ("Validated", change.validatedAt), ("Ready", change.readyAt), ("Completed", change.completedAt),
            ("Aborted", change.abortedAt), ("Reader check waived", change.readerCheckWaiver),
        ] {
            if let value { facts.append((label, HTML.escape(value))) }
        }
        if let version = change.migrationVersion { facts.append(("Migration", "\(version)")) }
        let factList = facts.map { "<div><dt>\($0.0)</dt><dd>\($0.1)</dd></div>" }.joined()
        let error = change.error.map { "<p class=\"error\">\(HTML.escape($0))</p>" } ?? ""

        let complete: String
        if change.ready {
            complete = "<p class=\"complete ready\">Complete would pass.</p>"
        } else if change.blockedBy.isEmpty {
            complete = "<p class=\"complete\">Complete would refuse: the change is \(HTML.escape(change.phase)).</p>"
        } else {
            complete =
                "<p class=\"complete\">Complete would refuse:</p><ul class=\"blockers\">"
                + change.blockedBy.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>"
        }

        let objects: String
        if let problem = details.definitionError {
            objects = "<p class=\"error\">The stored file does not read back: \(HTML.escape(problem))</p>"
        } else if details.objects.isEmpty {
            objects = "<p class=\"note\">None.</p>"
        } else {
            objects =
                "<div class=\"scroll\"><table class=\"objects\"><thead><tr><th>Kind</th><th>Name</th><th>Columns</th><th>State</th></tr></thead><tbody>"
                + details.objects.map { object in
                    """
                    <tr><td>\(HTML.escape(object.kind))</td><td><code>\(HTML.escape(object.name))</code></td>\
                    <td>\(HTML.escape(object.columns.joined(separator: ", ")))</td>\
                    <td><span class="state \(object.done ? "succeeded" : "queued")">\(HTML.escape(object.state))</span></td></tr>
                    """
                }.joined() + "</tbody></table></div>"
        }

        var readers: String
        if details.readers.isEmpty {
            readers = "<p class=\"note\">None needed: the change drops no column.</p>"
        } else {
            readers = ""
            if details.readerSampling == false {
                readers +=
                    "<p class=\"error\">Sampling unavailable: \(HTML.escape(details.readerSamplingUnavailable ?? "unknown reason"))</p>"
            } else if details.readerSampling == nil {
                readers +=
                    "<p class=\"note\">Not sampled yet: a worker samples pg_stat_statements while the change is in flight.</p>"
            }
            readers +=
                "<div class=\"scroll\"><table class=\"readers\"><thead><tr><th>Dropped column</th><th>Last seen (UTC)</th><th class=\"opt\">Window since</th><th>Application names</th></tr></thead><tbody>"
                + details.readers.map { reader in
                    """
                    <tr><td><code>\(HTML.escape(reader.column))</code></td>\
                    <td>\(reader.lastSeenAt.map(HTML.escape) ?? "<em>not seen</em>")</td>\
                    <td class="opt">\(HTML.escape(reader.windowStartedAt ?? ""))</td>\
                    <td>\(HTML.escape(reader.applicationNames.joined(separator: ", ")))</td></tr>
                    """
                }.joined() + "</tbody></table></div>"
                + "<p class=\"note\">A <code>SELECT *</code> names no column: such readers are invisible to pg_stat_statements; the application names help find them.</p>"
        }

        return """
            <h1>\(HTML.escape(change.name)) <small>\(HTML.escape(change.table))</small></h1>
            \(error)\(complete)
            <dl class="facts">\(factList)</dl>
            <h2>Indexes and constraints</h2>\(objects)
            <h2>Reader evidence</h2>\(readers)
            <details><summary>Change file</summary><pre class="sql">\(HTML.escape(details.source))</pre></details>
            """
    }
}
