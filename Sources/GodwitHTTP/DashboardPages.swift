import Foundation
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import Hummingbird

/// The dashboard's pages, rendered on the server. Every value from the database goes through
/// `HTML.escape`; the only script is `liveScript`, which swaps in fresh fragments.
struct DashboardPages: Sendable {
    /// The session's CSRF token, put in every control form.
    var csrf: String
    var readOnly: Bool
    /// The per-response nonce that the Content-Security-Policy allows the script under.
    var nonce: String

    func layout(title: String, active: String, body: String) -> String {
        let links = [
            ("/", "Jobs", "jobs"), ("/workers", "Workers", "workers"), ("/migrations", "Migrations", "migrations"),
            ("/backups", "Backups", "backups"), ("/changes", "Changes", "changes"), ("/fleet", "Fleet", "fleet"),
        ]
        .map { "<a href=\"\($0.0)\"\($0.2 == active ? " aria-current=\"page\"" : "")>\($0.1)</a>" }.joined()
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light dark">
            <title>\(HTML.escape(title)) · Godwit</title>
            <style>\(Self.css)</style></head>
            <body><header><strong>Godwit</strong><nav>\(links)</nav>\(readOnly ? "<span class=\"tag\">read-only</span>" : "")</header>
            <main>\(body)</main>
            <script nonce="\(nonce)">\(Self.liveScript)</script>
            </body></html>
            """
    }

    // MARK: Jobs

    /// The jobs list: counts by state (which filter by state, keeping the kind and search), the
    /// kind and search filters, one line a job, and links to older and newer pages.
    /// `notice`: what the last bulk action did, from the redirect's query string.
    func jobsPage(_ page: JobPage, counts: JobCounts, filter: JobFilter, kinds: [String], notice: String? = nil)
        -> String
    {
        let query = fragmentQuery(filter)
        let kindOptions = ([""] + kinds).map {
            "<option value=\"\(HTML.escape($0))\"\(filter.kind == $0 ? " selected" : "")>\($0.isEmpty ? "any kind" : HTML.escape($0))</option>"
        }.joined()
        let body = """
            <div class="toolbar"><h1>Jobs</h1>
            <nav class="counts" aria-label="Jobs by state" data-live="/fragments/counts\(query)">\(countsBar(counts, filter: filter))</nav>
            <form class="filters" method="get" action="/">\(filter.state.map { "<input type=\"hidden\" name=\"state\" value=\"\($0.rawValue)\">" } ?? "")
            <select name="kind" aria-label="Kind">\(kindOptions)</select>
            <input type="search" name="q" placeholder="Search by name" value="\(HTML.escape(filter.search ?? ""))" aria-label="Search by name">
            <button type="submit">Filter</button></form></div>
            \(notice.map { "<p class=\"notice\" role=\"status\">\(HTML.escape($0))</p>" } ?? "")
            <div class="scroll"><table id="jobs" class="jobs"><thead><tr><th class="c-id num">ID</th><th class="c-name">Name</th>\
            <th class="c-kind opt">Kind</th><th class="c-state">State</th><th class="c-progress">Progress</th>\
            <th class="c-rate opt num">Rows/s</th><th class="c-eta opt num">ETA</th><th class="c-att opt num" title="Attempts">Att.</th>\
            <th class="c-created opt">Created</th><th class="c-ran opt">Ran</th><th class="c-note">Hold or error</th>\
            \(readOnly ? "" : "<th class=\"c-actions\">Actions</th>")</tr></thead>
            <tbody data-live="/fragments/jobs\(query)">\(jobRows(page.jobs))</tbody></table></div>
            \(pager(page, filter: filter))
            """
        return layout(title: "Jobs", active: "jobs", body: body)
    }

    /// How many jobs are in each state, each a link to the list filtered by it, and the stale
    /// running jobs; a button retries the failed ones (those this server's role may retry).
    func countsBar(_ counts: JobCounts, filter: JobFilter) -> String {
        let total = counts.byState.values.reduce(0, +)
        var items = [
            "<a class=\"count all\" href=\"/\"\(filter.state == nil ? " aria-current=\"true\"" : "")><b>\(total)</b> all</a>"
        ]
        items += JobState.allCases.map { state in
            let current = filter.state == state ? " aria-current=\"true\"" : ""
            let count = counts.byState[state] ?? 0
            let state = state.rawValue
            return
                "<a class=\"count \(state)\" data-state=\"\(state)\" href=\"/?state=\(state)\"\(current)><b>\(count)</b> \(state)</a>"
        }
        items.append(
            "<a class=\"count stale\(counts.stale > 0 ? " alert" : "")\" data-state=\"stale\" href=\"/?state=running\" title=\"running jobs whose worker has not been seen lately\"><b>\(counts.stale)</b> stale</a>"
        )
        let failed = counts.byState[.failed] ?? 0
        if !readOnly && failed > 0 {
            items.append(
                """
                <form method="post" action="/failed/retry" class="bulk"><input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
                <button type="submit" class="retry" data-action="retry-failed">Retry all failed</button></form>
                """)
        }
        return items.joined()
    }

    /// "Newer" and "Older" links: keyset pagination by id, keeping the filters.
    func pager(_ page: JobPage, filter: JobFilter) -> String {
        var links: [String] = []
        if page.paged { links.append("<a href=\"/\(pageQuery(filter.at()))\">« Newest</a>") }
        if let after = page.newerThan {
            links.append("<a rel=\"prev\" href=\"/\(pageQuery(filter.at(after: after)))\">‹ Newer</a>")
        }
        if let before = page.olderThan {
            links.append("<a rel=\"next\" href=\"/\(pageQuery(filter.at(before: before)))\">Older ›</a>")
        }
        return links.isEmpty ? "" : "<nav class=\"pager\" aria-label=\"Pages\">\(links.joined())</nav>"
    }

    /// The filter as a query string for a link, HTML-escaped; empty without any.
    func pageQuery(_ filter: JobFilter) -> String {
        let pairs = [
            ("state", filter.state?.rawValue), ("kind", filter.kind), ("q", filter.search),
            ("before", filter.before.map(String.init)),
            ("after", filter.after.map(String.init)),
        ].compactMap { key, value in value.map { "\(key)=\(HTML.queryEscape($0))" } }
        return pairs.isEmpty ? "" : "?" + HTML.escape(pairs.joined(separator: "&"))
    }

    func fragmentQuery(_ filter: JobFilter) -> String { pageQuery(filter) }

    func jobRows(_ jobs: [JobRecord]) -> String {
        if jobs.isEmpty { return "<tr><td colspan=\"12\" class=\"empty\">No jobs.</td></tr>" }
        return jobs.map { job in
            let note: String
            if let hold = job.holdReason, !hold.isEmpty {
                note =
                    "<span class=\"hold\" title=\"\(HTML.escape(String(hold.prefix(500))))\">held: \(HTML.escape(String(hold.prefix(200))))</span>"
            } else if let error = job.lastError, !error.isEmpty {
                note =
                    "<span class=\"error\" title=\"\(HTML.escape(String(error.prefix(500))))\">\(HTML.escape(String(error.prefix(200))))</span>"
            } else {
                note = ""
            }
            return """
                <tr data-job="\(job.id)"\(job.stale ? " class=\"stale\"" : "")><td class="id num"><a href="/jobs/\(job.id)">\(job.id)</a></td>\
                <td class="name"><a href="/jobs/\(job.id)" title="\(HTML.escape(job.name)) (\(HTML.escape(job.kind.rawValue)))">\(HTML.escape(job.name))</a></td>\
                <td class="opt kind">\(HTML.escape(job.kind.rawValue))</td><td class="state">\(stateTag(job))</td>\
                <td class="progress">\(progressBar(job, compact: true))</td><td class="opt num">\(rate(job.rowsPerSecond))</td>\
                <td class="opt num">\(eta(job.etaSeconds))</td><td class="opt num">\(job.attempts)/\(job.maxAttempts)</td>\
                <td class="created time">\(RelativeTime.element(RelativeTime.ago(job.createdAgo), utc: RelativeTime.utc(iso: job.createdAt)))</td>\
                <td class="opt time">\(ran(job))</td><td class="note">\(note)</td>\
                \(readOnly ? "" : "<td class=\"actions\">\(controls(job, next: "/"))</td>")</tr>
                """
        }.joined(separator: "\n")
    }

    /// `ran 2 h 5 min` for a finished job, `running 5 min` for a running one, the start and end
    /// in UTC in the title.
    func ran(_ job: JobRecord) -> String {
        guard let seconds = job.ranSeconds, let started = job.startedAt else { return "" }
        let title =
            "started \(RelativeTime.utc(iso: started)) UTC"
            + (job.finishedAt.map { ", finished \(RelativeTime.utc(iso: $0)) UTC" } ?? "")
        let words =
            job.state == .running
            ? "running \(RelativeTime.duration(seconds))" : "ran \(RelativeTime.duration(seconds))"
        return "<span title=\"\(HTML.escape(title))\">\(HTML.escape(words))</span>"
    }

    func stateTag(_ job: JobRecord) -> String {
        let pending = job.control.map { " <small>(\($0.rawValue) requested)</small>" } ?? ""
        let stale =
            job.stale
            ? " <span class=\"state stale\" data-stale=\"true\" title=\"its worker was last seen \(job.workerSeenAgo.map { RelativeTime.ago($0) } ?? "long ago")\">stale</span>"
            : ""
        return "<span class=\"state \(job.state.rawValue)\">\(job.state.rawValue)</span>\(stale)\(pending)"
    }

    /// A bar and the percentage, and rows done of rows total: beside them, or with `compact` (the
    /// one-line list) in the bar's title.
    func progressBar(_ job: JobRecord, compact: Bool = false) -> String {
        let percent = String(format: "%.1f%%", job.percent)
        let rowsText = job.rowsTotal.map { total in "\(job.rowsDone ?? 0) / \(total) rows" }
        let rows = compact ? "" : rowsText.map { " <small>\($0)</small>" } ?? ""
        let title = compact ? rowsText.map { " title=\"\($0)\"" } ?? "" : ""
        return """
            <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="\(String(format: "%.1f", job.percent))"\(title)>\
            <span style="width:\(String(format: "%.1f", min(100, max(0, job.percent))))%"></span></div>\
            <span class="percent">\(percent)</span>\(rows)
            """
    }

    func rate(_ value: Double?) -> String { value.map { String(format: "%.0f", $0) } ?? "" }

    /// The time left, in the dashboard's words for durations (`42 s`, `3 min 5 s`, `2 h 5 min`).
    func eta(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "" }
        return RelativeTime.duration(seconds)
    }

    /// The buttons that apply to the job's state, each a POST form with the CSRF token. Cancel
    /// asks first: its POST answers a page to confirm on (see `cancelConfirmPage`).
    func controls(_ job: JobRecord, next: String) -> String {
        guard !readOnly else { return "" }
        let actions: [JobAction]
        switch job.state {
        case .queued: actions = [.pause, .cancel]
        case .running: actions = job.control == .pause ? [.resume, .cancel] : [.pause, .cancel]
        case .paused: actions = [.resume, .cancel]
        case .failed, .cancelled: actions = [.retry]
        case .succeeded: actions = []
        }
        return actions.map(\.rawValue).map { action in
            """
            <form method="post" action="/jobs/\(job.id)/\(action)"><input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
            <input type="hidden" name="next" value="\(HTML.escape(next))">\
            <button type="submit" class="\(action)" data-action="\(action)">\(action.prefix(1).uppercased() + action.dropFirst())</button></form>
            """
        }.joined()
    }

    /// The step between a Cancel button and the cancel: what will be cancelled, and a second
    /// POST that carries `confirm=yes`. It needs no script, so the page's policy stays strict.
    func cancelConfirmPage(_ job: JobRecord, next: String) -> String {
        let body = """
            <h1>Cancel job #\(job.id)?</h1>
            <p><strong>\(HTML.escape(job.name))</strong> (\(HTML.escape(job.kind.rawValue))) is \(stateTag(job)), \
            \(String(format: "%.1f%%", job.percent)) done. A running job stops at its next checkpoint; what its \
            batches committed stays committed. A cancelled job can be retried later.</p>
            <div class="actions"><form method="post" action="/jobs/\(job.id)/cancel">\
            <input type="hidden" name="csrf" value="\(HTML.escape(csrf))"><input type="hidden" name="next" value="\(HTML.escape(next))">\
            <input type="hidden" name="confirm" value="yes">\
            <button type="submit" class="cancel" data-action="confirm-cancel">Cancel the job</button></form>\
            <a class="button" href="\(HTML.escape(next))">Keep it</a></div>
            """
        return layout(title: "Cancel \(job.name)?", active: "jobs", body: body)
    }

    // MARK: One job

    func jobPage(
        _ job: JobRecord, batches: [BatchRow], shards: [JobRecord] = [], payload: JobPayload = JobPayload(fields: nil),
        errors: [JobErrorRecord] = [], role: String = "?"
    ) -> String {
        let body = """
            <p><a href="/">← Jobs</a></p>
            <section data-live="/fragments/jobs/\(job.id)">\(jobDetail(job, batches: batches, shards: shards, payload: payload, errors: errors, role: role))</section>
            """
        return layout(title: job.name, active: "jobs", body: body)
    }

    /// A job's facts, controls, what it does, its attempts' errors, for a batched job (a shard
    /// too) the governor's state, and its batch chart; for a split job's parent (which runs no
    /// batch itself) the table of its shards instead.
    func jobDetail(
        _ job: JobRecord, batches: [BatchRow], shards: [JobRecord] = [], payload: JobPayload = JobPayload(fields: nil),
        errors: [JobErrorRecord] = [], role: String = "?"
    ) -> String {
        let worker =
            job.workerID.map { id in
                HTML.escape(id)
                    + (job.state == .running
                        ? job.workerSeenAgo.map { " <small>seen \(RelativeTime.ago($0))</small>" } ?? "" : "")
            } ?? ""
        let facts: [(String, String)] = [
            ("State", stateTag(job)), ("Progress", progressBar(job)), ("Rows/s", rate(job.rowsPerSecond)),
            ("ETA", eta(job.etaSeconds)), ("Batch size", job.batchSize.map(String.init) ?? ""),
            ("Lock waits caused", Self.lockWaits(job.lockWaits, longestMS: job.lockWaitMSMax)),
            ("Attempts", "\(job.attempts)/\(job.maxAttempts)"), ("Hold", HTML.escape(job.holdReason ?? "")),
            ("Worker", worker),
            (
                "Created",
                RelativeTime.element(RelativeTime.ago(job.createdAgo), utc: RelativeTime.utc(iso: job.createdAt))
            ),
            ("Started", Self.when(job.startedAt, ago: job.startedAgo)),
            ("Finished", Self.when(job.finishedAt, ago: job.finishedAgo)),
            ("Ran", ran(job)),
            ("Last error", "<span class=\"error\">\(HTML.escape(job.lastError ?? ""))</span>"),
        ]
        let failed = batches.filter { $0.error != nil }
        let failures = failed.suffix(10).map {
            "<li>batch \($0.seq): \(HTML.escape(String(($0.error ?? "").prefix(300))))</li>"
        }.joined()
        let staleNote =
            job.stale
            ? "<p class=\"alert\" role=\"status\"><span class=\"state stale\" data-stale=\"true\">stale</span> Its worker was last seen \(job.workerSeenAgo.map { RelativeTime.ago($0) } ?? "long ago"): it may have died. Once its lease runs out, a worker rescues the job and runs it again. See <a href=\"/workers\">Workers</a>.</p>"
            : ""
        return """
            <h1>\(HTML.escape(job.name)) <small>#\(job.id) · \(HTML.escape(job.kind.rawValue))</small></h1>
            \(staleNote)<div class="actions">\(controls(job, next: "/jobs/\(job.id)"))</div>
            <dl class="facts">\(facts.filter { !Self.isBlank($0.1) }.map { "<div><dt>\($0.0)</dt><dd>\($0.1)</dd></div>" }.joined())</dl>
            \(whatItDoes(job, payload: payload, role: role))
            \(errorsSection(errors))
            \(job.kind == .batched ? governorSection(job, batches: batches, payload: payload) : "")
            \(shards.isEmpty ? batchSection(batches) : shardSection(shards))
            \(failed.isEmpty ? "" : "<h2>Failed batches</h2><ul>\(failures)</ul>")
            """
    }

    /// Whether a fact's HTML shows nothing (no hold, no error yet), so the fact is left out.
    static func isBlank(_ html: String) -> Bool {
        html.isEmpty || html == "<span class=\"error\"></span>"
    }

    /// `3 min ago` with its UTC time, or nothing without a time (ISO 8601, as a job's are).
    static func when(_ iso: String?, ago: Double?) -> String {
        guard let iso, let ago else { return "" }
        return RelativeTime.element(RelativeTime.ago(ago), utc: RelativeTime.utc(iso: iso))
    }

    /// What the job does: its kind and checkpoint, which every reader sees, and its payload
    /// (table, key, statement and settings) only for a role `job_details` shows it to.
    func whatItDoes(_ job: JobRecord, payload: JobPayload, role: String) -> String {
        var rows: [(String, String)] = [("Kind", "<code>\(HTML.escape(job.kind.rawValue))</code>")]
        if let parent = job.parentID { rows.append(("Shard of", "<a href=\"/jobs/\(parent)\">#\(parent)</a>")) }
        var settings: [(String, String)] = []
        if let fields = payload.fields {
            for (key, value) in fields {
                switch key {
                case "table": rows.append(("Table", "<code>\(HTML.escape(value))</code>"))
                case "key": rows.append(("Key", "<code>\(HTML.escape(value))</code>"))
                case "statement", "sql": rows.append(("Statement", "<pre class=\"sql\">\(HTML.escape(value))</pre>"))
                default: settings.append((key, value))
                }
            }
        }
        rows.append(
            (
                "Cursor",
                job.cursor.map { "<code>\(HTML.escape($0))</code> <small>(the last key done)</small>" }
                    ?? "<span class=\"empty\">none yet</span>"
            ))
        let hidden =
            payload.fields == nil
            ? """
            <p class="note" data-payload="hidden">The payload (table, key, statement, settings) is not shown: the role \
            this server reads as, <code>\(HTML.escape(role))</code>, may read it only for jobs it enqueued, as a \
            controller (<code>grant_control</code>) or as the queue's owner (<code>job_details</code>).</p>
            """ : ""
        let extra =
            settings.isEmpty
            ? ""
            : "<details><summary>Settings</summary><dl class=\"settings\">"
                + settings.map {
                    "<dt>\(HTML.escape($0.0))</dt><dd><code>\(HTML.escape(String($0.1.prefix(2000))))</code></dd>"
                }.joined()
                + "</dl></details>"
        return """
            <h2>What it does</h2>
            <dl class="what">\(rows.map { "<dt>\($0.0)</dt><dd>\($0.1)</dd>" }.joined())</dl>\(hidden)\(extra)
            """
    }

    /// Each failed attempt's error, newest first; the server's DETAIL only where the store
    /// read it (a session that may see the job's details).
    func errorsSection(_ errors: [JobErrorRecord]) -> String {
        guard !errors.isEmpty else { return "" }
        let rows = errors.map { e in
            """
            <tr><td class="num">\(e.attempt)</td><td class="time">\(RelativeTime.element(RelativeTime.ago(e.ago), utc: RelativeTime.utc(iso: e.at)))</td>\
            <td>\(HTML.escape(e.workerID ?? ""))</td><td class="error">\(HTML.escape(String(e.error.prefix(2000))))\
            \(e.detail.map { "<br><small class=\"detail\">detail: \(HTML.escape(String($0.prefix(2000))))</small>" } ?? "")</td></tr>
            """
        }.joined()
        return """
            <h2>Errors by attempt</h2>
            <div class="scroll"><table class="errors"><thead><tr><th class="num">Attempt</th><th>When</th><th>Worker</th>\
            <th>Error</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
    }

    func batchSection(_ batches: [BatchRow]) -> String {
        "<h2>Batches</h2>"
            + (batches.isEmpty ? "<p class=\"empty\">No batches recorded.</p>" : BatchChart(batches: batches).svg)
    }

    /// The shards of a split job, each linked to its own page (its governor, batches and
    /// chart), with its batch size and the governor's reason for it.
    func shardSection(_ shards: [JobRecord]) -> String {
        let rows = shards.map {
            """
            <tr><td class="num"><a href="/jobs/\($0.id)">\($0.id)</a></td><td>\(stateTag($0))</td><td>\(progressBar($0))</td>\
            <td class="num">\(rate($0.rowsPerSecond))</td><td class="num">\($0.batchSize.map(String.init) ?? "")</td>\
            <td class="reason">\(HTML.escape(String(($0.sizeReason ?? "").prefix(300))))</td>\
            <td>\(Self.lockWaits($0.lockWaits, longestMS: $0.lockWaitMSMax))</td><td>\(HTML.escape($0.holdReason ?? ""))</td>\
            <td class="error">\(HTML.escape(String(($0.lastError ?? "").prefix(200))))</td></tr>
            """
        }.joined()
        return """
            <h2>Shards</h2>
            <div class="scroll"><table><thead><tr><th>Shard</th><th>State</th><th class="wide">Progress</th><th>Rows/s</th>\
            <th>Batch size</th><th>Why this size</th><th>Lock waits caused</th><th>Hold</th><th>Last error</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
    }

    /// `3, longest 42 ms`, or `none`.
    static func lockWaits(_ count: Int64, longestMS: Double) -> String {
        count == 0 ? "none" : "\(count), longest \(String(format: "%.0f", longestMS)) ms"
    }

    // MARK: Workers

    func workersPage(_ workers: [WorkerRecord]) -> String {
        let body = """
            <h1>Workers</h1>
            <p class="note">A worker beats every two seconds; one unseen for longer than <code>stale_after()</code> \
            without having said it stopped is stale (it may have died), and so are its running jobs.</p>
            <div class="scroll"><table id="workers"><thead><tr><th>ID</th><th>Status</th><th>Host</th><th class="opt num">PID</th>\
            <th class="opt">Version</th><th class="opt num">Running jobs</th><th class="opt">Started</th><th>Last seen</th></tr></thead>
            <tbody data-live="/fragments/workers">\(workerRows(workers))</tbody></table></div>
            """
        return layout(title: "Workers", active: "workers", body: body)
    }

    func workerRows(_ workers: [WorkerRecord]) -> String {
        guard !workers.isEmpty else {
            return "<tr><td colspan=\"8\" class=\"empty\">No worker has registered yet.</td></tr>"
        }
        return workers.map { w in
            let stopped = w.stoppedAgo.map { " <small>(\(RelativeTime.ago($0)))</small>" } ?? ""
            return """
                <tr data-worker="\(HTML.escape(w.id))"><td class="name"><code>\(HTML.escape(w.id))</code></td>\
                <td><span class="state \(w.state == "running" ? "running" : w.state == "stale" ? "stale" : "cancelled")" data-status="\(HTML.escape(w.state))">\(HTML.escape(w.state))</span>\(stopped)</td>\
                <td>\(HTML.escape(w.host ?? ""))</td><td class="opt num">\(w.pid.map(String.init) ?? "")</td>\
                <td class="opt">\(HTML.escape(w.version ?? ""))</td>\
                <td class="opt num">\(w.runningJobs)\(w.concurrency.map { " / \($0)" } ?? "")</td>\
                <td class="opt time">\(RelativeTime.element(RelativeTime.ago(w.startedAgo), utc: RelativeTime.utc(iso: w.startedAt)))</td>\
                <td class="time">\(RelativeTime.element(RelativeTime.ago(w.seenAgo), utc: RelativeTime.utc(iso: w.heartbeatAt)))</td></tr>
                """
        }.joined(separator: "\n")
    }

    // MARK: Migrations and backups

    /// Applied and pending migrations; under each pending one, what the lint's catalog check
    /// found in it (`lint` is nil without a migrations folder).
    /// `denied`: the database refused this server's `role` the ledger (the page says what to grant);
    /// `ledger` is its name as sqlx.toml gives it.
    func migrationsPage(
        _ rows: [MigrationRow], hasSource: Bool, lint: Result<LintReport, MigrationError>? = nil,
        denied: String? = nil, role: String? = nil, ledger: String = MigrationConfig.defaultTableName
    ) -> String {
        var found: [Int64: [LintFinding]] = [:]
        var allowed: [Int64: [LintFinding]] = [:]
        var summary = ""
        if let denied {
            summary = """
                <p class="error">The role this server connects as (\(HTML.escape(role ?? "?"))) cannot read the \
                migrations ledger: \(HTML.escape(denied)). To show it here, grant it: \
                <code>GRANT SELECT ON \(HTML.escape(ledger)) TO \(HTML.escape(quoteIdentifier(role ?? "role")))</code>.</p>
                """
        }
        switch lint {
        case nil:
            break
        case .failure(let error):
            summary = "<p class=\"error\">The lint could not read the migrations: \(HTML.escape(error.description))</p>"
        case .success(let report):
            func version(_ finding: LintFinding) -> Int64 {
                let name = URL(fileURLWithPath: finding.file).lastPathComponent
                return ((try? MigrationSource.parseFileName(name, path: finding.file)) ?? nil)?.version ?? 0
            }
            for finding in report.findings { found[version(finding), default: []].append(finding) }
            for finding in report.allowed { allowed[version(finding), default: []].append(finding) }
            let pending = rows.filter { $0.state == "pending" }.count
            if pending > 0 {
                let accepted = report.allowed.isEmpty ? "" : ", \(report.allowed.count) accepted by an allow comment"
                summary = """
                    <p class="\(report.findings.isEmpty ? "note" : "lintsummary")">Lint of the \(pending) pending \
                    migration\(pending == 1 ? "" : "s") (the catalog check, nothing run): \
                    \(report.findings.isEmpty ? "no findings" : "\(report.findings.count) finding\(report.findings.count == 1 ? "" : "s")")\(accepted). \
                    <code>godwit migrate lint -D URL</code> traces them on a scratch copy.</p>
                    """
            }
        }
        let table = rows.map { row in
            let findings = row.state == "pending" ? found[row.version] ?? [] : []
            let accepted = row.state == "pending" ? allowed[row.version] ?? [] : []
            let tag =
                findings.isEmpty
                ? "" : " <span class=\"tag\">\(findings.count) finding\(findings.count == 1 ? "" : "s")</span>"
            var html = """
                <tr><td class="num">\(row.version)</td><td>\(HTML.escape(row.description))</td>\
                <td><span class="state \(row.state == "installed" ? "succeeded" : row.state == "pending" ? "queued" : "failed")">\(HTML.escape(row.state))</span>\(tag)</td>\
                <td>\(HTML.escape(row.installedOn ?? ""))</td><td class="num">\(row.executionMS.map { String(format: "%.1f ms", $0) } ?? "")</td></tr>
                """
            if !findings.isEmpty || !accepted.isEmpty {
                let items = findings.map(Self.findingItem) + accepted.map(Self.allowedItem)
                html +=
                    "<tr class=\"findings\"><td></td><td colspan=\"4\"><ul class=\"findings\">\(items.joined())</ul></td></tr>"
            }
            return html
        }.joined()
        let note =
            hasSource
            ? "" : "<p class=\"note\">Pending migrations show when Godwit runs with <code>--source</code>.</p>"
        let body = """
            <h1>Migrations</h1>\(note)\(summary)
            <div class="scroll"><table><thead><tr><th>Version</th><th>Description</th><th>State</th><th>Installed (UTC)</th><th>Took</th></tr></thead>
            <tbody>\(rows.isEmpty ? "<tr><td colspan=\"5\" class=\"empty\">No migrations.</td></tr>" : table)</tbody></table></div>
            """
        return layout(title: "Migrations", active: "migrations", body: body)
    }

    /// One finding: the rule, where, what, the table's size when known, and the fix.
    static func findingItem(_ finding: LintFinding) -> String {
        var facts: [String] = []
        if finding.rewrite { facts.append("rewrites the table") }
        if let rows = finding.estimatedRows { facts.append("~\(rows) rows") }
        if let bytes = finding.bytes { facts.append(ByteSize.description(bytes)) }
        let file = URL(fileURLWithPath: finding.file).lastPathComponent
        return """
            <li><span class="rule">\(HTML.escape(finding.rule))</span> <code>\(HTML.escape(file)):\(finding.line)</code> \
            \(HTML.escape(finding.message))\(facts.isEmpty ? "" : " <span class=\"note\">(\(HTML.escape(facts.joined(separator: "; "))))</span>")\
            <br><code class="statement">\(HTML.escape(String(finding.statement.prefix(200))))</code>\
            <br><span class="note">Fix: \(HTML.escape(finding.recipe))</span></li>
            """
    }

    /// A finding an allow comment accepted, with the comment's reason.
    static func allowedItem(_ finding: LintFinding) -> String {
        let file = URL(fileURLWithPath: finding.file).lastPathComponent
        return """
            <li class="allowed"><span class="rule">\(HTML.escape(finding.rule))</span> <code>\(HTML.escape(file)):\(finding.line)</code> \
            accepted\(finding.reason.map { ": " + HTML.escape($0) } ?? "")</li>
            """
    }

    func backupsPage(_ rows: [BackupRow]) -> String {
        let table = rows.map {
            """
            <tr><td>\($0.file.map { HTML.escape(URL(fileURLWithPath: $0).lastPathComponent) } ?? "<em>hidden: needs grant_control</em>")</td><td>\(HTML.escape($0.databaseName))</td>\
            <td class="num">\(ByteSize.description($0.sizeBytes))</td><td class="num">\(eta($0.ageSeconds)) ago</td>\
            <td>verified \(HTML.escape($0.verifiedAt))</td><td><code>\(HTML.escape(String($0.sha256.prefix(12))))</code></td>\
            <td>\($0.reason.map(HTML.escape) ?? "<em>not recorded</em>")</td></tr>
            """
        }.joined()
        let body = """
            <h1>Backups</h1>
            <div class="scroll"><table><thead><tr><th>File</th><th>Database</th><th>Size</th><th>Age</th><th>Verification (UTC)</th><th>SHA-256</th><th>Why</th></tr></thead>
            <tbody>\(rows.isEmpty ? "<tr><td colspan=\"7\" class=\"empty\">No backups.</td></tr>" : table)</tbody></table></div>
            """
        return layout(title: "Backups", active: "backups", body: body)
    }

    func loginPage(failed: Bool) -> String {
        layout(
            title: "Log in", active: "",
            body: """
                <h1>Log in</h1>\(failed ? "<p class=\"error\">That token is not the one this server runs with.</p>" : "")
                <form method="post" action="/login" class="filters"><input type="password" name="token" placeholder="HTTP token" aria-label="HTTP token" autocomplete="current-password">
                <button type="submit">Log in</button></form>
                """)
    }

    /// An error as a page: the status and one line of what to do.
    func errorPage(status: HTTPResponse.Status, message: String) -> String {
        layout(
            title: "\(status.code) \(status.reasonPhrase)", active: "",
            body: """
                <h1>\(status.code) \(HTML.escape(status.reasonPhrase))</h1>
                <p class="error">\(HTML.escape(message))</p>
                <p><a href="/">← Jobs</a></p>
                """)
    }

    // MARK: Style and script

    /// The pages' style: a dense table (one line a job at desktop widths, the full text of a
    /// cut-off name or error in its title) that becomes one compact card a job on a phone, where
    /// secondary columns hide and names wrap at word boundaries.
    static let css = """
        :root{--bg:#f6f7f8;--fg:#1d1f21;--muted:#5f6368;--line:#e3e5e8;--card:#fff;--hover:#f1f5fb;--accent:#2b6cb0;--bar:#38a169;--warn:#b7580f;--bad:#c53030;--wait:#805ad5}
        @media (prefers-color-scheme:dark){:root{--bg:#15171a;--fg:#e6e6e3;--muted:#9aa0a6;--line:#2c2f34;--card:#1d2024;--hover:#23272d;--accent:#63b3ed;--bar:#48bb78;--warn:#f6ad55;--bad:#fc8181;--wait:#b794f4}}
        *{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
        header{display:flex;gap:1.25rem;align-items:center;padding:.45rem 1rem;border-bottom:1px solid var(--line);background:var(--card);flex-wrap:wrap}
        nav{display:flex;gap:1rem;flex-wrap:wrap}nav a{color:var(--muted);text-decoration:none}nav a[aria-current]{color:var(--fg);font-weight:600}
        main{padding:.5rem 1rem;max-width:1600px;margin:0 auto}h1{font-size:1.25rem;margin:.15rem 0 .6rem;overflow-wrap:break-word}h1 small{color:var(--muted);font-weight:400;font-size:.85rem}
        h2{font-size:1rem;margin:1.1rem 0 .4rem}a{color:var(--accent)}
        .toolbar{display:flex;gap:.4rem 1rem;align-items:center;flex-wrap:wrap;margin-bottom:.4rem}.toolbar h1{margin:0}.toolbar .filters{margin:0 0 0 auto}.toolbar select{max-width:9rem}.toolbar input[type=search]{width:10rem}
        .counts{display:flex;gap:.25rem;flex-wrap:wrap;align-items:center}.count{padding:.05rem .45rem;border:1px solid var(--line);border-radius:1rem;background:var(--card);color:var(--muted);text-decoration:none;font-size:.8rem;white-space:nowrap}
        .count b{color:var(--fg);font-variant-numeric:tabular-nums;margin-right:.15rem}.count[aria-current]{border-color:var(--accent);color:var(--fg)}
        .count.running b{color:var(--accent)}.count.failed b{color:var(--bad)}.count.paused b{color:var(--warn)}.count.succeeded b{color:var(--bar)}.count.stale.alert{border-color:var(--bad);color:var(--bad)}.count.stale.alert b{color:var(--bad)}
        .counts form{margin:0}.counts button{font-size:.78rem;padding:.05rem .5rem}
        .notice{padding:.4rem .7rem;border:1px solid var(--line);border-left:3px solid var(--accent);background:var(--card);border-radius:6px}
        .alert{padding:.4rem .7rem;border:1px solid var(--bad);border-radius:6px;background:var(--card)}
        .scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
        table{border-collapse:collapse;width:100%}th,td{padding:.1rem .4rem;text-align:left;border-bottom:1px solid var(--line);vertical-align:middle}
        tbody tr:last-child td{border-bottom:0}tbody tr:hover{background:var(--hover)}
        th{font-size:.72rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);font-weight:600;white-space:nowrap;padding-top:.35rem;padding-bottom:.35rem}th.wide{min-width:10rem}
        .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        table.jobs{table-layout:fixed}table.jobs th{overflow:hidden;text-overflow:ellipsis}.percent{font-size:.85rem}table.jobs td{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}table.jobs td.name a{font-weight:500}
        .c-id{width:3.8rem}.c-name{width:17%}.c-kind{width:5.5rem}.c-state{width:7.5rem}.c-progress{width:8.8rem}.c-rate{width:4.6rem}.c-eta{width:5.8rem}
        .c-att{width:3.4rem}.c-created{width:5.6rem}.c-ran{width:7.6rem}.c-actions{width:8.6rem}
        @media (max-width:1400px){table.jobs .c-kind,table.jobs td.kind{display:none}}
        table.jobs td.kind,table.jobs td.time{color:var(--muted);font-size:.85rem}table.jobs td.note{font-size:.85rem}
        table.jobs tr.stale{background:color-mix(in srgb,var(--bad) 7%,transparent)}
        td.name{overflow-wrap:break-word}.error{color:var(--bad);overflow-wrap:anywhere}.hold{color:var(--warn)}.empty,.note{color:var(--muted)}
        .bar{display:inline-block;width:4rem;height:.5rem;border-radius:.25rem;background:var(--line);overflow:hidden;vertical-align:middle;margin-right:.35rem}
        .bar span{display:block;height:100%;background:var(--bar)}.percent{font-variant-numeric:tabular-nums}td.progress small{color:var(--muted)}
        .state{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.75rem;line-height:1.15rem;border:1px solid var(--line);white-space:nowrap}
        .state.running{color:var(--accent)}.state.failed{color:var(--bad)}.state.paused{color:var(--warn)}.state.succeeded{color:var(--bar)}.state.cancelled{color:var(--muted)}
        .state.stale{color:#fff;background:var(--bad);border-color:var(--bad);font-weight:600}
        .filters{display:flex;gap:.4rem;flex-wrap:wrap;margin-bottom:.6rem}input,select,button,a.button{font:inherit;font-size:.85rem;padding:.2rem .5rem;border-radius:6px;border:1px solid var(--line);background:var(--card);color:var(--fg)}
        a.button{text-decoration:none;display:inline-block}
        button{cursor:pointer}button:hover{border-color:var(--accent)}div.actions{display:flex;gap:.3rem;flex-wrap:wrap;align-items:center;margin-bottom:.8rem}.actions form{margin:0}
        td.actions{white-space:nowrap}td.actions form{display:inline-block;margin-right:.25rem}td.actions button{font-size:.72rem;padding:0 .4rem;line-height:1.1rem}
        button.cancel{color:var(--bad)}.tag{font-size:.8rem;color:var(--warn)}
        .pager{display:flex;gap:1rem;justify-content:flex-end;padding:.5rem .25rem}
        ul.findings{margin:0;padding-left:1.1rem}ul.findings li{margin:.2rem 0 .5rem;overflow-wrap:anywhere}.rule{font-weight:600;color:var(--warn)}
        li.allowed,li.allowed .rule{color:var(--muted);font-weight:400}code.statement{font-size:.85em;color:var(--muted)}.lintsummary{color:var(--warn)}
        .facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.4rem 1rem;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
        .facts dt{font-size:.75rem;color:var(--muted)}.facts dd small{white-space:nowrap}.facts dd{margin:0;overflow-wrap:anywhere}
        dl.what,dl.settings{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
        dl.what dt,dl.settings dt{color:var(--muted);font-size:.85rem}dl.what dd,dl.settings dd{margin:0;min-width:0;overflow-wrap:anywhere}
        pre.sql{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem}details{margin-top:.5rem}summary{cursor:pointer;color:var(--muted)}
        small.detail{color:var(--muted)}
        table.changes td,table.objects td,table.readers td{overflow-wrap:anywhere}table.changes th,table.objects th,table.readers th{white-space:normal}.complete.ready{color:var(--bar)}ul.blockers{margin:.2rem 0 .8rem}
        svg.chart{width:100%;height:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
        svg.chart text{fill:var(--muted);font-size:11px}svg.chart text.left{fill:var(--accent)}svg.chart text.right{fill:var(--warn)}
        svg.chart.governor{margin-bottom:.4rem}svg.chart text.bound{fill:var(--muted)}.bound{stroke:var(--muted);stroke-dasharray:4 3;stroke-opacity:.7}
        dl.governor{margin-bottom:.4rem}table.batches th.c-error{width:45%}table.batches caption{caption-side:top;text-align:left;font-size:.75rem;color:var(--muted);padding:.3rem .4rem}
        table.batches tr.failed{background:color-mix(in srgb,var(--bad) 6%,transparent)}td.reason{font-size:.85rem;overflow-wrap:anywhere}
        .grid{stroke:currentColor;stroke-opacity:.12}.size{stroke:var(--accent);fill:none;stroke-width:1.5}.dur{stroke:var(--warn);fill:none;stroke-width:1.5}.fail{fill:var(--bad)}.wait{fill:var(--wait);fill-opacity:.75}svg.chart text.waitlabel{fill:var(--wait)}
        @media (max-width:700px){main{padding:.5rem}.opt{display:none}header{gap:.4rem 1rem}.toolbar .filters{margin:0}.filters input[type=search]{flex:1 1 8rem;min-width:0}
        table.jobs thead{display:none}table.jobs,table.jobs tbody{display:block}
        table.jobs tr{display:flex;flex-wrap:wrap;align-items:center;gap:.2rem .5rem;padding:.45rem .6rem;border-bottom:1px solid var(--line)}
        table.jobs td{display:block;border:0;padding:0;white-space:normal}table.jobs td.opt{display:none}
        table.jobs td.id{order:0;color:var(--muted)}table.jobs td.name{order:1;flex:1 1 12rem;max-width:none;min-width:0;overflow:visible;overflow-wrap:break-word}
        table.jobs td.state{order:2}table.jobs td.progress{order:3}table.jobs td.created{order:3;font-size:.8rem}table.jobs td.actions{order:4;margin-left:auto}
        table.jobs td.note{order:5;flex:1 1 100%;max-width:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}table.jobs td.note:empty{display:none}
        th,td{padding:.3rem .4rem}.bar{width:3.5rem}dl.what,dl.settings{grid-template-columns:1fr}.facts{grid-template-columns:repeat(2,minmax(0,1fr))}}
        """

    /// Replaces the content of every `data-live` element with the fragment at its URL, every two
    /// seconds, unless the user is typing in it. Fragments are HTML rendered (and escaped) by the server.
    static let liveScript = """
        (function(){const live=document.querySelectorAll('[data-live]');if(!live.length)return;
        async function refresh(){for(const el of live){if(el.contains(document.activeElement)&&document.activeElement.tagName!=='BODY')continue;
        try{const r=await fetch(el.dataset.live,{credentials:'same-origin',headers:{'Accept':'text/html'}});if(r.ok){el.innerHTML=await r.text();}}catch(e){}}}
        setInterval(refresh,2000);})();
        """
}
