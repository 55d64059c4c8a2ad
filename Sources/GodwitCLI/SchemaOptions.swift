import ArgumentParser

/// `--schema`: the schema of Godwit's own tables (the queue's and the backups'), for every
/// command that reads or writes them: `migrate run` (with `--enqueue` or `--backup`), `worker`,
/// `serve`, `workers`, `job` and `backup`. The same option, help and default (`godwit`) in each.
struct SchemaOptions: ParsableArguments {
    @Option(help: "The schema of Godwit's own tables: the queue's, its functions and the backups'.")
    var schema = "godwit"
}
