import Testing

/// Every fleet test that needs targets runs inside this suite, so that its three private
/// clusters start once (`.fleetClusters`) and are destroyed after the last test; each test
/// makes databases of its own on them (`FleetFixture`), so the tests run in parallel.
@Suite("Fleets over three clusters", .fleetClusters)
struct FleetTests {}
