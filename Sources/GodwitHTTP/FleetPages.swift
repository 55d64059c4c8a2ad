import Foundation
import GodwitFleet

/// The fleet page (one line a run of `godwit fleet migrate` or `fleet enqueue` recorded in this
/// database) and one run's page (every target, its failures with their errors first, and for an
/// enqueue run each target's backfill progress). Every value from the database goes through
/// `HTML.escape`.
extension DashboardPages {
    func fleetPage(_ runs: OperationsStore.FleetRuns) -> String {
        let body = """
            <h1>Fleet</h1>
            <p class="note">Runs of <code>godwit fleet migrate</code> and <code>godwit fleet enqueue</code> that used \
            this database as their control database (<code>-D</code>). <code>godwit fleet resume RUN</code> finishes an \
            interrupted or failed run.</p>
            <div class="scroll"><table id="fleet-runs" class="fleet"><thead><tr><th>Run</th><th>Command</th>\
            <th>State</th><th>Targets</th><th class="opt">Source</th><th class="opt">Started (UTC)</th>\
            <th class="opt">Finished (UTC)</th></tr></thead>
            <tbody data-live="/fragments/fleet">\(fleetRows(runs))</tbody></table></div>
            """
        return layout(title: "Fleet", active: "fleet", body: body)
    }

    /// The list's rows, or one saying why there is none.
    func fleetRows(_ runs: OperationsStore.FleetRuns) -> String {
        switch runs {
        case .notReadable:
            return
                "<tr><td colspan=\"7\" class=\"empty\">This server's login may not read the fleet's records (SELECT on fleet_runs and fleet_targets).</td></tr>"
        case .runs(let runs) where runs.isEmpty:
            return "<tr><td colspan=\"7\" class=\"empty\">No fleet runs recorded in this database.</td></tr>"
        case .runs(let runs):
            return runs.map { overview in
                let run = overview.run
                return """
                    <tr data-run="\(run.id)"><td class="name"><a href="/fleet/\(run.id)">#\(run.id)</a></td>\
                    <td>\(HTML.escape(run.command))</td><td>\(fleetRunState(run))</td>\
                    <td>\(fleetCounts(overview))</td><td class="opt"><code>\(HTML.escape(run.source ?? ""))</code></td>\
                    <td class="opt">\(HTML.escape(run.startedAt))</td><td class="opt">\(HTML.escape(run.finishedAt ?? ""))</td></tr>
                    """
            }.joined(separator: "\n")
        }
    }

    func fleetRunState(_ run: FleetRun) -> String {
        let style =
            switch (run.state, run.isInterrupted) {
            case (.running, true): "failed"
            case (.running, false): "running"
            case (.succeeded, _): "succeeded"
            case (.failed, _): "failed"
            }
        return
            "<span class=\"state \(style)\" data-state=\"\(HTML.escape(run.shownState))\">\(HTML.escape(run.shownState))</span>"
    }

    /// `58 succeeded · 1 failed · 1 skipped` in the states' order, each tagged with its state.
    func fleetCounts(_ overview: FleetRunOverview) -> String {
        let parts = FleetTargetState.allCases.compactMap { state -> String? in
            guard let n = overview.counts[state] else { return nil }
            return
                "<span class=\"count-\(state.rawValue)\" data-count=\"\(state.rawValue)\">\(n) \(state.rawValue)</span>"
        }
        return parts.isEmpty ? "no targets" : parts.joined(separator: " · ")
    }

    func fleetRunPage(
        _ run: FleetRunOverview, targets: [FleetTargetRecord], progress: [String: FleetBackfillProgress]
    ) -> String {
        let body = """
            <p><a href="/fleet">← Fleet</a></p>
            <section data-live="/fragments/fleet/\(run.run.id)">\(fleetRunDetail(run, targets: targets, progress: progress))</section>
            """
        return layout(title: "Fleet run \(run.run.id)", active: "fleet", body: body)
    }

    /// One run's facts, its failed targets with their errors, then every target.
    func fleetRunDetail(
        _ overview: FleetRunOverview, targets: [FleetTargetRecord], progress: [String: FleetBackfillProgress]
    ) -> String {
        let run = overview.run
        var facts: [(String, String)] = [
            ("State", fleetRunState(run)), ("Command", HTML.escape(run.command)), ("Targets", fleetCounts(overview)),
            ("Source", "<code>\(HTML.escape(run.source ?? ""))</code>"),
            ("Targets from", "<code>\(HTML.escape(run.targetsOrigin))</code>"),
            ("Started", "\(HTML.escape(run.startedAt)) by \(HTML.escape(run.startedBy))"),
        ]
        if let finished = run.finishedAt { facts.append(("Finished", HTML.escape(finished))) }
        if run.isInterrupted {
            facts.append(("Interrupted", "its process is gone: <code>godwit fleet resume \(run.id)</code> finishes it"))
        }
        let failed = targets.filter { $0.state == .failed }
        let failures =
            failed.isEmpty
            ? ""
            : "<h2>Failures</h2><ul class=\"blockers fleet-failures\">"
                + failed.map { "<li><b>\(HTML.escape($0.name))</b>: \(HTML.escape($0.error ?? "failed"))</li>" }
                .joined()
                + "</ul>"
        let isEnqueue = run.command == "enqueue"
        let rows = targets.map { target -> String in
            let applied =
                target.appliedVersions.isEmpty
                ? "" : "\(target.appliedVersions.count) (\(target.appliedVersions.last.map(String.init) ?? ""))"
            let extra: String
            if isEnqueue {
                extra =
                    "<td>\(target.jobID.map { "#\($0)" } ?? "")</td><td class=\"progress\">\(fleetProgress(progress[target.name]))</td>"
            } else {
                extra =
                    "<td class=\"num\">\(HTML.escape(applied))</td><td class=\"opt num\">\(target.lockWaitMs.map { String(format: "%.0f", $0) } ?? "")</td>"
            }
            return """
                <tr data-target="\(HTML.escape(target.name))"><td class="name">\(HTML.escape(target.name))\(target.canary ? " <small>canary</small>" : "")</td>\
                <td><span class="state \(fleetTargetStyle(target.state))">\(target.state.rawValue)</span></td>\
                <td class="opt"><code>\(HTML.escape(target.schema ?? ""))</code></td>\(extra)\
                <td class="opt num">\(target.durationSeconds.map { String(format: "%.1f s", $0) } ?? "")</td>\
                <td class="reason">\(HTML.escape(target.error ?? ""))</td></tr>
                """
        }.joined()
        let heads =
            isEnqueue
            ? "<th>Job</th><th>Backfill</th>"
            : "<th class=\"num\">Applied (last)</th><th class=\"opt num\">Lock wait (ms)</th>"
        return """
            <h1>Fleet run #\(run.id)</h1>
            <dl class="facts">\(facts.map { "<div><dt>\($0.0)</dt><dd>\($0.1)</dd></div>" }.joined())</dl>
            \(failures)
            <h2>Targets</h2>
            <div class="scroll"><table class="fleet-targets"><thead><tr><th>Target</th><th>State</th>\
            <th class="opt">Schema</th>\(heads)<th class="opt num">Took</th><th>Error</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }

    func fleetTargetStyle(_ state: FleetTargetState) -> String {
        switch state {
        case .pending: "queued"
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .skipped: "cancelled"
        }
    }

    /// A target's backfill as its own queue reports it: a bar and rows done of total, or why it
    /// could not be read.
    func fleetProgress(_ target: FleetBackfillProgress?) -> String {
        guard let target else { return "" }
        guard target.state != nil, let percent = target.percent else { return HTML.escape(target.summary) }
        return """
            <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="\(String(format: "%.1f", percent))">\
            <span style="width:\(String(format: "%.1f", percent))%"></span></div><small>\(HTML.escape(target.summary))</small>
            """
    }
}
