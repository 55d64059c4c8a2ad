extension Duration {
    /// The duration in seconds, for SQL (`make_interval(secs => $1)`) and rates.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in milliseconds.
    var milliseconds: Double { seconds * 1000 }
}
