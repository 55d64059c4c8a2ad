import GodwitQueue
import Prometheus

/// The worker's own counters and histograms, kept in this process (a Prometheus registry) and
/// fed by the worker as jobs start and end.
///
/// Labels are bounded: `kind` is one of the known kinds or `other`, `outcome` one of six.
public final class WorkerMetrics: WorkerObserver {
    public let registry: PrometheusCollectorRegistry

    /// The series of one `kind` label. They are made once, up front: the registry's lookup
    /// checks the name, labels, help text and buckets every time, which at thousands of jobs a
    /// second cost the queue a measurable share of its throughput (`ops/bench/queue`).
    private struct KindSeries: Sendable {
        var attempts: Counter
        var startLatency: DurationHistogram
        var duration: DurationHistogram
        var leasesLost: Counter
        var outcomes: [JobOutcome.Label: Counter]
    }

    /// By kind label: each known kind, and `other`.
    private let series: [String: KindSeries]
    private let rescued: Counter

    static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]
    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600), .seconds(14400),
    ]

    /// Every series exists (at zero) from the first scrape, for each known kind and `other`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), knownKinds: [JobKind]) {
        self.registry = registry
        var series: [String: KindSeries] = [:]
        for kind in knownKinds.map(\.rawValue) + ["other"] where series[kind] == nil {
            series[kind] = KindSeries(
                attempts: registry.makeCounter(
                    named: "godwit_job_attempts_total", labels: [("kind", kind)],
                    help: "Job attempts started by this worker."),
                startLatency: registry.makeDurationHistogram(
                    named: "godwit_job_start_latency_seconds", labels: [("kind", kind)], buckets: Self.latencyBuckets,
                    help: "Time from when a job was due (enqueued, or its retry became due) to its claim."),
                duration: registry.makeDurationHistogram(
                    named: "godwit_job_duration_seconds", labels: [("kind", kind)], buckets: Self.durationBuckets,
                    help: "How long an attempt ran, from claim to outcome."),
                leasesLost: registry.makeCounter(
                    named: "godwit_job_leases_lost_total", labels: [("kind", kind)],
                    help: "Attempts that lost their lease to another worker (they wrote nothing)."),
                outcomes: Dictionary(
                    uniqueKeysWithValues: JobOutcome.Label.allCases.map { outcome in
                        (
                            outcome,
                            registry.makeCounter(
                                named: "godwit_job_outcomes_total",
                                labels: [("kind", kind), ("outcome", outcome.rawValue)],
                                help:
                                    "Attempts ended, by outcome: succeeded, failed, retry, paused, cancelled, handed_back."
                            )
                        )
                    }))
        }
        self.series = series
        self.rescued = registry.makeCounter(
            named: "godwit_jobs_rescued_total", help: "Jobs of dead workers put back in the queue by this worker.")
    }

    private func of(_ kind: JobKind) -> KindSeries { series[kind.rawValue] ?? series["other"]! }

    public func jobStarted(kind: JobKind, waited: Duration) {
        let series = of(kind)
        series.attempts.increment()
        series.startLatency.record(waited)
    }

    public func jobFinished(kind: JobKind, outcome: JobOutcome.Label, duration: Duration) {
        let series = of(kind)
        series.outcomes[outcome]?.increment()
        series.duration.record(duration)
    }

    public func jobsRescued(_ count: Int) {
        rescued.increment(by: Int64(count))
    }

    public func leaseLost(kind: JobKind) {
        of(kind).leasesLost.increment()
    }
}
