/// What every test's `godwit worker` is given, in-process or as a process: `--connect-timeout
/// 60`. A worker bounds each attempt to connect by `--connect-timeout` (10 s unless given), not
/// by `PGCONNECT_TIMEOUT`, which `ops/test` sets to a minute for every other session: while the
/// suite starts, every test makes its database at once, and the test server's start of a
/// session has taken 8 s (see `ops/test`). A test that wants another bound gives its own after
/// these (the last one given wins).
public let testWorkerConnectTimeout = ["--connect-timeout", "60"]
