import Foundation
import GodwitMigrations
import GodwitPostgres
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
        let links = [("/", "Jobs", "jobs"), ("/migrations", "Migrations", "migrations"), ("/backups", "Backups", "backups")]
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

    func jobsPage(_ jobs: [JobRow], filter: JobFilter, kinds: [String]) -> String {
        let query = fragmentQuery(filter)
        let stateOptions = ([""] + JobFilter.states).map {
            "<option value=\"\($0)\"\(filter.state == $0 ? " selected" : "")>\($0.isEmpty ? "any state" : $0)</option>"
        }.joined()
        let kindOptions = ([""] + kinds).map {
            "<option value=\"\(HTML.escape($0))\"\(filter.kind == $0 ? " selected" : "")>\($0.isEmpty ? "any kind" : HTML.escape($0))</option>"
        }.joined()
        let body = """
            <h1>Jobs</h1>
            <form class="filters" method="get" action="/">
            <select name="state" aria-label="State">\(stateOptions)</select>
            <select name="kind" aria-label="Kind">\(kindOptions)</select>
            <input type="search" name="q" placeholder="Search by name" value="\(HTML.escape(filter.search ?? ""))" aria-label="Search by name">
            <button type="submit">Filter</button></form>
            <div class="scroll"><table id="jobs"><thead><tr><th>ID</th><th>Name</th><th>Kind</th><th>State</th>
            <th class="wide">Progress</th><th>Rows/s</th><th>ETA</th><th>Attempts</th><th>Hold</th><th>Last error</th>\(readOnly ? "" : "<th>Actions</th>")</tr></thead>
            <tbody data-live="/fragments/jobs\(query)">\(jobRows(jobs))</tbody></table></div>
            """
        return layout(title: "Jobs", active: "jobs", body: body)
    }

    func fragmentQuery(_ filter: JobFilter) -> String {
        let pairs = [("state", filter.state), ("kind", filter.kind), ("q", filter.search)].compactMap { key, value in
            value.map { "\(key)=\(HTML.queryEscape($0))" }
        }
        return pairs.isEmpty ? "" : "?" + HTML.escape(pairs.joined(separator: "&"))
    }

    func jobRows(_ jobs: [JobRow]) -> String {
        if jobs.isEmpty { return "<tr><td colspan=\"11\" class=\"empty\">No jobs.</td></tr>" }
        return jobs.map { job in
            """
            <tr data-job="\(job.id)"><td><a href="/jobs/\(job.id)">\(job.id)</a></td>
            <td class="name"><a href="/jobs/\(job.id)">\(HTML.escape(job.name))</a></td><td>\(HTML.escape(job.kind))</td>
            <td>\(stateTag(job))</td><td>\(progressBar(job))</td><td class="num">\(rate(job.rowsPerSecond))</td>
            <td class="num">\(eta(job.etaSeconds))</td><td class="num">\(job.attempts)/\(job.maxAttempts)</td>
            <td>\(HTML.escape(job.holdReason ?? ""))</td><td class="error">\(HTML.escape(String((job.lastError ?? "").prefix(200))))</td>
            \(readOnly ? "" : "<td class=\"actions\">\(controls(job, next: "/"))</td>")</tr>
            """
        }.joined(separator: "\n")
    }

    func stateTag(_ job: JobRow) -> String {
        let pending = job.control.map { " <small>(\(HTML.escape($0)) requested)</small>" } ?? ""
        return "<span class=\"state \(HTML.escape(job.state))\">\(HTML.escape(job.state))</span>\(pending)"
    }

    func progressBar(_ job: JobRow) -> String {
        let percent = String(format: "%.1f%%", job.percent)
        let rows = job.rowsTotal.map { total in " <small>\(job.rowsDone ?? 0) / \(total) rows</small>" } ?? ""
        return """
            <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="\(String(format: "%.1f", job.percent))">\
            <span style="width:\(String(format: "%.1f", min(100, max(0, job.percent))))%"></span></div>\
            <span class="percent">\(percent)</span>\(rows)
            """
    }

    func rate(_ value: Double?) -> String { value.map { String(format: "%.0f", $0) } ?? "" }

    func eta(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "" }
        let s = Int(seconds)
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \(s % 3600 / 60) min"
    }

    /// The buttons that apply to the job's state, each a POST form with the CSRF token.
    func controls(_ job: JobRow, next: String) -> String {
        guard !readOnly else { return "" }
        var actions: [String] = []
        switch job.state {
        case "queued": actions = ["pause", "cancel"]
        case "running": actions = job.control == "pause" ? ["resume", "cancel"] : ["pause", "cancel"]
        case "paused": actions = ["resume", "cancel"]
        case "failed", "cancelled": actions = ["retry"]
        default: actions = []
        }
        return actions.map { action in
            """
            <form method="post" action="/jobs/\(job.id)/\(action)"><input type="hidden" name="csrf" value="\(HTML.escape(csrf))">\
            <input type="hidden" name="next" value="\(HTML.escape(next))">\
            <button type="submit" class="\(action)" data-action="\(action)">\(action.prefix(1).uppercased() + action.dropFirst())</button></form>
            """
        }.joined()
    }

    // MARK: One job

    func jobPage(_ job: JobRow, batches: [BatchRow], shards: [JobRow] = []) -> String {
        let body = """
            <p><a href="/">← Jobs</a></p>
            <section data-live="/fragments/jobs/\(job.id)">\(jobDetail(job, batches: batches, shards: shards))</section>
            """
        return layout(title: job.name, active: "jobs", body: body)
    }

    /// A job's facts, controls and batch chart; for a split job's parent (which runs no batch
    /// itself) the table of its shards instead.
    func jobDetail(_ job: JobRow, batches: [BatchRow], shards: [JobRow] = []) -> String {
        let facts: [(String, String)] = [
            ("State", stateTag(job)), ("Progress", progressBar(job)), ("Rows/s", rate(job.rowsPerSecond)),
            ("ETA", eta(job.etaSeconds)), ("Batch size", job.batchSize.map(String.init) ?? ""),
            ("Lock waits caused", Self.lockWaits(job.lockWaits, longestMS: job.lockWaitMSMax)),
            ("Attempts", "\(job.attempts)/\(job.maxAttempts)"), ("Hold", HTML.escape(job.holdReason ?? "")),
            ("Worker", HTML.escape(job.workerID ?? "")), ("Created", HTML.escape(job.createdAt)),
            ("Started", HTML.escape(job.startedAt ?? "")), ("Finished", HTML.escape(job.finishedAt ?? "")),
            ("Last error", "<span class=\"error\">\(HTML.escape(job.lastError ?? ""))</span>"),
        ]
        let failed = batches.filter { $0.error != nil }
        let failures = failed.suffix(10).map {
            "<li>batch \($0.seq): \(HTML.escape(String(($0.error ?? "").prefix(300))))</li>"
        }.joined()
        return """
            <h1>\(HTML.escape(job.name)) <small>#\(job.id) · \(HTML.escape(job.kind))</small></h1>
            <div class="actions">\(controls(job, next: "/jobs/\(job.id)"))</div>
            <dl class="facts">\(facts.map { "<div><dt>\($0.0)</dt><dd>\($0.1)</dd></div>" }.joined())</dl>
            \(shards.isEmpty ? batchSection(batches) : shardSection(shards))
            \(failed.isEmpty ? "" : "<h2>Failed batches</h2><ul>\(failures)</ul>")
            """
    }

    func batchSection(_ batches: [BatchRow]) -> String {
        "<h2>Batches</h2>"
            + (batches.isEmpty ? "<p class=\"empty\">No batches recorded.</p>" : BatchChart(batches: batches).svg)
    }

    /// The shards of a split job, each linked to its own page (its batches and chart).
    func shardSection(_ shards: [JobRow]) -> String {
        let rows = shards.map {
            """
            <tr><td class="num"><a href="/jobs/\($0.id)">\($0.id)</a></td><td>\(stateTag($0))</td><td>\(progressBar($0))</td>\
            <td class="num">\(rate($0.rowsPerSecond))</td><td class="num">\($0.batchSize.map(String.init) ?? "")</td>\
            <td>\(Self.lockWaits($0.lockWaits, longestMS: $0.lockWaitMSMax))</td><td>\(HTML.escape($0.holdReason ?? ""))</td>\
            <td class="error">\(HTML.escape(String(($0.lastError ?? "").prefix(200))))</td></tr>
            """
        }.joined()
        return """
            <h2>Shards</h2>
            <div class="scroll"><table><thead><tr><th>Shard</th><th>State</th><th class="wide">Progress</th><th>Rows/s</th>\
            <th>Batch size</th><th>Lock waits caused</th><th>Hold</th><th>Last error</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
    }

    /// `3, longest 42 ms`, or `none`.
    static func lockWaits(_ count: Int64, longestMS: Double) -> String {
        count == 0 ? "none" : "\(count), longest \(String(format: "%.0f", longestMS)) ms"
    }

    // MARK: Migrations and backups

    /// Applied and pending migrations; under each pending one, what the lint's catalog check
    /// found in it (`lint` is nil without a migrations folder).
    /// `denied`: the database refused this server's `role` the ledger (the page says what to grant);
    /// `ledger` is its name as sqlx.toml gives it.
    func migrationsPage(
        _ rows: [MigrationRow], hasSource: Bool, lint: Result<LintReport, MigrationError>? = nil,
        denied: String? = nil, role: String? = nil, ledger: String = "_sqlx_migrations"
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
            let tag = findings.isEmpty ? "" : " <span class=\"tag\">\(findings.count) finding\(findings.count == 1 ? "" : "s")</span>"
            var html = """
                <tr><td class="num">\(row.version)</td><td>\(HTML.escape(row.description))</td>\
                <td><span class="state \(row.state == "installed" ? "succeeded" : row.state == "pending" ? "queued" : "failed")">\(HTML.escape(row.state))</span>\(tag)</td>\
                <td>\(HTML.escape(row.installedOn ?? ""))</td><td class="num">\(row.executionMS.map { String(format: "%.1f ms", $0) } ?? "")</td></tr>
                """
            if !findings.isEmpty || !accepted.isEmpty {
                let items = findings.map(Self.findingItem) + accepted.map(Self.allowedItem)
                html += "<tr class=\"findings\"><td></td><td colspan=\"4\"><ul class=\"findings\">\(items.joined())</ul></td></tr>"
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
        if let bytes = finding.bytes { facts.append(size(bytes)) }
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
            <td class="num">\(Self.size($0.sizeBytes))</td><td class="num">\(eta($0.ageSeconds)) ago</td>\
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

    static func size(_ bytes: Int64) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f", value) + " " + units[unit]
    }

    // MARK: Style and script

    static let css = """
        :root{--bg:#fbfbfa;--fg:#1d1f21;--muted:#5f6368;--line:#e2e2df;--card:#fff;--accent:#2b6cb0;--bar:#38a169;--warn:#c05621;--bad:#c53030;--wait:#805ad5}
        @media (prefers-color-scheme:dark){:root{--bg:#15171a;--fg:#e6e6e3;--muted:#9aa0a6;--line:#2c2f34;--card:#1d2024;--accent:#63b3ed;--bar:#48bb78;--warn:#f6ad55;--bad:#fc8181;--wait:#b794f4}}
        *{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
        header{display:flex;gap:1.5rem;align-items:center;padding:.75rem 1.25rem;border-bottom:1px solid var(--line);background:var(--card);flex-wrap:wrap}
        nav{display:flex;gap:1rem}nav a{color:var(--muted);text-decoration:none}nav a[aria-current]{color:var(--fg);font-weight:600}
        main{padding:1rem 1.25rem;max-width:1400px;margin:0 auto}h1{font-size:1.4rem;margin:.25rem 0 1rem}h1 small{color:var(--muted);font-weight:400;font-size:.9rem}
        a{color:var(--accent)}.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
        table{border-collapse:collapse;width:100%}th,td{padding:.45rem .6rem;text-align:left;border-bottom:1px solid var(--line);vertical-align:middle}
        th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);font-weight:600}th.wide{min-width:11rem}
        td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.name{max-width:22rem;overflow-wrap:anywhere}
        .error{color:var(--bad);overflow-wrap:anywhere;max-width:28rem}.empty,.note{color:var(--muted)}
        .bar{display:inline-block;width:7rem;height:.6rem;border-radius:.3rem;background:var(--line);overflow:hidden;vertical-align:middle;margin-right:.4rem}
        .bar span{display:block;height:100%;background:var(--bar)}.percent{font-variant-numeric:tabular-nums}
        .state{padding:.1rem .45rem;border-radius:1rem;font-size:.8rem;border:1px solid var(--line)}
        .state.running{color:var(--accent)}.state.failed{color:var(--bad)}.state.paused{color:var(--warn)}.state.succeeded{color:var(--bar)}
        .filters{display:flex;gap:.5rem;flex-wrap:wrap;margin-bottom:1rem}input,select,button{font:inherit;padding:.35rem .6rem;border-radius:6px;border:1px solid var(--line);background:var(--card);color:var(--fg)}
        button{cursor:pointer}button:hover{border-color:var(--accent)}div.actions{display:flex;gap:.3rem;flex-wrap:wrap;margin-bottom:1rem}.actions form{margin:0}td.actions{white-space:nowrap}td.actions form{display:inline-block;margin-right:.3rem}
        button.cancel{color:var(--bad)}.tag{font-size:.8rem;color:var(--warn)}
        ul.findings{margin:0;padding-left:1.1rem}ul.findings li{margin:.2rem 0 .5rem;overflow-wrap:anywhere}.rule{font-weight:600;color:var(--warn)}
        li.allowed,li.allowed .rule{color:var(--muted);font-weight:400}code.statement{font-size:.85em;color:var(--muted)}.lintsummary{color:var(--warn)}
        .facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:.5rem 1rem;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem}
        .facts dt{font-size:.8rem;color:var(--muted)}.facts dd{margin:0}svg.chart{width:100%;height:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
        svg.chart text{fill:var(--muted);font-size:11px}.size{stroke:var(--accent);fill:none;stroke-width:1.5}.dur{stroke:var(--warn);fill:none;stroke-width:1.5}.fail{fill:var(--bad)}.wait{fill:var(--wait);fill-opacity:.75}svg.chart text.waitlabel{fill:var(--wait)}
        @media (max-width:700px){main{padding:.75rem}th,td{padding:.35rem .4rem}.bar{width:4rem}}
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

/// Batch size and batch duration over the batches, as an inline SVG with two lines; failed
/// batches are red marks on the axis.
struct BatchChart {
    var batches: [BatchRow]

    var svg: String {
        let width = 900.0
        let height = 260.0
        let left = 50.0
        let right = 50.0
        let top = 20.0
        let bottom = 30.0
        let plotW = width - left - right
        let plotH = height - top - bottom
        let maxSize = Double(batches.map(\.batchSize).max() ?? 1)
        let maxMS = max(batches.map(\.durationMS).max() ?? 1, 1)
        let n = max(batches.count - 1, 1)
        func x(_ i: Int) -> Double { left + plotW * Double(i) / Double(n) }
        func path(_ value: (BatchRow) -> Double, _ maximum: Double) -> String {
            batches.enumerated().map { i, b in
                (i == 0 ? "M" : "L") + String(format: "%.1f,%.1f", x(i), top + plotH * (1 - value(b) / max(maximum, 1)))
            }.joined(separator: " ")
        }
        let failures = batches.enumerated().filter { $0.element.error != nil }.map {
            String(format: "<rect class=\"fail\" x=\"%.1f\" y=\"%.1f\" width=\"3\" height=\"8\"><title>batch %lld failed</title></rect>", x($0.offset) - 1.5, top + plotH - 8, $0.element.seq)
        }.joined()
        // A batch that made sessions wait on its locks is a dot: as high as its longest wait
        // against the longest of all, as wide as how many waited.
        let maxWait = batches.map(\.lockWaitMS).max() ?? 0
        let waits = batches.enumerated().filter { $0.element.lockWaiters > 0 }.map {
            let b = $0.element
            let y = top + plotH * (1 - b.lockWaitMS / max(maxWait, 1))
            let r = min(2.5 + Double(b.lockWaiters), 7)
            return String(
                format: "<circle class=\"wait\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"><title>batch %lld made %ld waiting, longest %.0f ms</title></circle>",
                x($0.offset), y, r, b.seq, b.lockWaiters, b.lockWaitMS)
        }.joined()
        let waitLabel =
            waits.isEmpty
            ? "" : "<text class=\"waitlabel\" x=\"\(Int(width / 2))\" y=\"14\" text-anchor=\"middle\">● lock waits caused (longest \(String(format: "%.0f", maxWait)) ms)</text>"
        return """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="Batch size, duration and lock waits caused over the last \(batches.count) batches">
            <text x="4" y="14">batch size (max \(Int(maxSize)))</text>
            <text x="\(Int(width - 4))" y="14" text-anchor="end">duration (max \(String(format: "%.0f", maxMS)) ms)</text>\(waitLabel)
            <line x1="\(left)" y1="\(top + plotH)" x2="\(width - right)" y2="\(top + plotH)" stroke="currentColor" stroke-opacity=".2"/>
            <path class="size" d="\(path({ Double($0.batchSize) }, maxSize))"><title>batch size</title></path>
            <path class="dur" d="\(path({ $0.durationMS }, maxMS))"><title>duration (ms)</title></path>\(failures)\(waits)
            <text x="\(left)" y="\(height - 8)">batch \(batches.first?.seq ?? 0)</text>
            <text x="\(width - right)" y="\(height - 8)" text-anchor="end">batch \(batches.last?.seq ?? 0)</text>
            </svg>
            """
    }
}
