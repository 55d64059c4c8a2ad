import Prometheus

/// Metrics by plain name with their help text, which every Godwit metric has.
extension PrometheusCollectorRegistry {
    func makeCounter(named name: String, labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    func makeGauge(named name: String, labels: [(String, String)] = [], help: String) -> Gauge {
        makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    func makeDurationHistogram(
        named name: String, labels: [(String, String)] = [], buckets: [Duration], help: String
    ) -> DurationHistogram {
        makeDurationHistogram(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels,
            buckets: buckets)
    }

    func makeValueHistogram(
        named name: String, labels: [(String, String)] = [], buckets: [Double], help: String
    ) -> ValueHistogram {
        makeValueHistogram(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels,
            buckets: buckets)
    }
}
