import GodwitQueue
import Prometheus

/// The worker's own counters and histograms, kept in this process (a Prometheus registry) and
/// fed by the worker as jobs start and end.
///
/// Labels are bounded: `kind` is one of the known kinds or `other`, `outcome` one of six.
public final class WorkerMetrics: WorkerObserver {
    public let registry: PrometheusCollectorRegistry
    private let knownKinds: Set<String>

    static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]
    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600), .seconds(14400),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), knownKinds: [String]) {
        self.registry = registry
        self.knownKinds = Set(knownKinds)
        // Registered up front so that every metric shows (at zero) from the first scrape.
        for kind in knownKinds {
            _ = attempts(kind)
            _ = registry.makeCounter(named: "godwit_job_leases_lost_total", labels: [("kind", kind)], help: Self.leaseHelp)
        }
        _ = rescued
    }

    private func label(_ kind: String) -> String { knownKinds.contains(kind) ? kind : "other" }

    private static let leaseHelp = "Attempts that lost their lease to another worker (they wrote nothing)."

    private func attempts(_ kind: String) -> Counter {
        registry.makeCounter(
            named: "godwit_job_attempts_total", labels: [("kind", label(kind))],
            help: "Job attempts started by this worker.")
    }

    private var rescued: Counter {
        registry.makeCounter(
            named: "godwit_jobs_rescued_total", help: "Jobs of dead workers put back in the queue by this worker.")
    }

    public func jobStarted(kind: String, waited: Duration) {
        attempts(kind).increment()
        registry.makeDurationHistogram(
            named: "godwit_job_start_latency_seconds", labels: [("kind", label(kind))], buckets: Self.latencyBuckets,
            help: "Time from when a job was due (enqueued, or its retry became due) to its claim."
        ).record(waited)
    }

    public func jobFinished(kind: String, outcome: String, duration: Duration) {
        registry.makeCounter(
            named: "godwit_job_outcomes_total", labels: [("kind", label(kind)), ("outcome", outcome)],
            help: "Attempts ended, by outcome: succeeded, failed, retry, paused, cancelled, handed_back."
        ).increment()
        registry.makeDurationHistogram(
            named: "godwit_job_duration_seconds", labels: [("kind", label(kind))], buckets: Self.durationBuckets,
            help: "How long an attempt ran, from claim to outcome."
        ).record(duration)
    }

    public func jobsRescued(_ count: Int) {
        rescued.increment(by: Int64(count))
    }

    public func leaseLost(kind: String) {
        registry.makeCounter(named: "godwit_job_leases_lost_total", labels: [("kind", label(kind))], help: Self.leaseHelp)
            .increment()
    }
}
