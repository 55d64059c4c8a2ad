import Foundation
import GodwitCLI
import Synchronization

/// A `godwit` command line running in this process (`GodwitCommand.start`), for a test that
/// acts while it runs: a worker that runs jobs while the test watches the queue, a `job watch`
/// of a job that never ends. The in-process counterpart of `RunningProcess`.
///
/// It ends by itself (`worker --drain`, a watched job that ends) or by `stop()`, which cancels
/// it. A worker cancelled stops as after `--shutdown-timeout`: its running jobs' statements are
/// cancelled and the jobs go back to the queue (attempts unchanged), its row in the workers
/// table is marked stopped, and it returns status 0. A graceful stop at the next checkpoint
/// (SIGTERM) is the process's to test (`GodwitProcess`). Dropping the handle cancels the
/// command too, so that a test that fails before its `stop()` leaves nothing running.
public final class RunningCommand: Sendable {
    private let captured: CapturedOutput
    private let task: Task<CommandOutcome, Never>
    private let finished: EndMark

    init(arguments: [String], environment: [String: String], directory: String?) {
        let captured = CapturedOutput()
        let finished = EndMark()
        self.captured = captured
        self.finished = finished
        // Unstructured on purpose: the command outlives the call that starts it, as a process
        // would; `stop()` and `deinit` end it, `wait()` joins it.
        task = Task {
            let outcome = await Godwit.run(
                arguments, environment: environment, directory: directory, capturingInto: captured)
            finished.ended.store(true, ordering: .sequentiallyConsistent)
            return outcome
        }
    }

    deinit { task.cancel() }

    /// What the command has written to stdout so far.
    public var currentStdout: String { captured.stdout }

    /// What the command has written to stderr so far (a worker's log lines).
    public var currentStderr: String { captured.stderr }

    /// Whether the command is still running.
    public var isRunning: Bool { !finished.ended.load(ordering: .sequentiallyConsistent) }

    /// Waits for the command to end by itself, and returns what `GodwitCommand.run` would have.
    public func wait() async -> GodwitProcess.Output {
        let outcome = await task.value
        return GodwitProcess.Output(
            status: outcome.status, stdout: outcome.stdout, stderr: outcome.stderr,
            pid: ProcessInfo.processInfo.processIdentifier)
    }

    /// Cancels the command and waits for it to end; returns its status and output.
    public func stop() async -> GodwitProcess.Output {
        task.cancel()
        return await wait()
    }
}

/// Whether a `RunningCommand`'s task has returned: a class of its own, so that the task sets
/// it without holding the handle (whose `deinit` cancels the task).
private final class EndMark: Sendable {
    let ended = Atomic(false)
}
