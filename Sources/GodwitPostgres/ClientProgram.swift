import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs PostgreSQL's client programs (`pg_dump`, `pg_restore`, `psql`) without blocking Swift's
/// cooperative pool, and without putting a secret on their command line (where `ps` and
/// `/proc/PID/cmdline` show it to every local user): the password travels in `PGPASSWORD`, an
/// `sslpassword` in a service file of the program's own (see `connectionArguments(for:)`).
///
/// Nothing here waits on a thread: a program's end is reported by `Process.terminationHandler`
/// (on a thread Foundation starts for it, which also reads what the program wrote) and resumes
/// the task.
/// What a program writes to stdout and stderr goes to files in a private temporary directory
/// (mode 0700, files 0600) that is removed as soon as the program has ended.
public enum ClientProgram {
    /// The environment the programs start with, are looked for in (`GODWIT_PG_BIN`, `PATH`)
    /// and keep their private files under (`TMPDIR`): the process's, unless a command run
    /// in-process gives its own (`Godwit.run(_:environment:directory:)`: its environment over
    /// the process's). Task-local, so that commands running at once in one process each start
    /// their programs with theirs; libpq, inside this process, reads the process's own.
    @TaskLocal public static var environment: [String: String] = ProcessInfo.processInfo.environment

    /// What a finished program returned and wrote.
    public struct Output: Sendable {
        /// The exit status, or the signal's number when `killedBySignal`.
        public var status: Int32
        public var killedBySignal: Bool
        public var stdout: String
        public var stderr: String

        public init(status: Int32, killedBySignal: Bool = false, stdout: String = "", stderr: String = "") {
            self.status = status
            self.killedBySignal = killedBySignal
            self.stdout = stdout
            self.stderr = stderr
        }

        /// Whether the program exited with status 0.
        public var succeeded: Bool { status == 0 && !killedBySignal }

        /// `exited with status 1`, or `was killed by signal 13`.
        public var exitDescription: String {
            killedBySignal ? "was killed by signal \(status)" : "exited with status \(status)"
        }

        /// The line of stderr that says what went wrong, for one-line error messages: the first
        /// error line (`ERROR:`, `FATAL:`, `error:`), else the first line.
        public var firstErrorLine: String {
            let lines = stderr.split(separator: "\n").map(String.init)
            let error = lines.first { $0.contains("ERROR:") || $0.contains("FATAL:") || $0.contains("error:") }
            return error ?? lines.first ?? "(no message)"
        }
    }

    /// One program to run: the tool's name (looked up with `path(of:)`) or path, its arguments
    /// and its environment (nil: `ClientProgram.environment`).
    public struct Invocation: Sendable {
        public var tool: String
        public var arguments: [String]
        public var environment: [String: String]?

        public init(_ tool: String, _ arguments: [String], environment: [String: String]? = nil) {
            self.tool = tool
            self.arguments = arguments
            self.environment = environment
        }
    }

    /// A client program could not be started.
    public struct LaunchError: GodwitError {
        public var description: String
        public var code: String { "launch" }

        public init(_ description: String) {
            self.description = description
        }
    }

    // MARK: - Finding the programs

    /// The tool's path: `GODWIT_PG_BIN`, then `pg_config --bindir` (the real binaries, not
    /// Debian's wrappers), then the PATH (both of `ClientProgram.environment`); the tool's bare
    /// name when none has it.
    ///
    /// `pg_config` runs once a process, the first time a tool is looked up, as a child process
    /// awaited like any other.
    public static func path(of tool: String) async -> String {
        if tool.contains("/") { return tool }
        let environment = ClientProgram.environment
        if let dir = environment["GODWIT_PG_BIN"], !dir.isEmpty, let found = executable(tool, in: dir) {
            return found
        }
        if let dir = await pgConfigBindir(), let found = executable(tool, in: dir) { return found }
        for dir in (environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            if let found = executable(tool, in: String(dir)) { return found }
        }
        return tool
    }

    private static func executable(_ tool: String, in directory: String) -> String? {
        let candidate = (directory as NSString).appendingPathComponent(tool)
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    /// `pg_config --bindir`, asked once: the first caller starts the question, every caller
    /// awaits the same answer.
    private static let bindir = Mutex<Task<String?, Never>?>(nil)

    private static func pgConfigBindir() async -> String? {
        let task = bindir.withLock { cached in
            if let cached { return cached }
            // Detached: the answer is the process's, not of the first asker's environment.
            let task = Task<String?, Never>.detached {
                for pgConfig in ["/usr/bin/pg_config", "/usr/local/bin/pg_config"]
                where FileManager.default.isExecutableFile(atPath: pgConfig) {
                    guard
                        let output = try? await launch(
                            [Invocation(pgConfig, ["--bindir"])], input: .none, output: nil
                        ).first,
                        output.succeeded
                    else { continue }
                    let dir = output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !dir.isEmpty { return dir }
                }
                return nil
            }
            cached = task
            return task
        }
        return await task.value
    }

    // MARK: - Connection arguments

    /// libpq connection arguments for a tool: a `key=value` conninfo without a secret in it (it
    /// goes on the command line, which every local user can read), and
    /// `ClientProgram.environment` with the password, if any, in `PGPASSWORD`.
    ///
    /// libpq reads `sslpassword` (the key of an encrypted client certificate) from no
    /// environment variable, so it travels in a service file: `run` and `pipeline` write it,
    /// mode 0600, into the private directory of the launch, point `PGSERVICEFILE` and
    /// `PGSERVICE` at it, and remove it when the programs end. Until then it waits in the
    /// environment returned here, under a name of Godwit's own that no program sees. A
    /// connection string that names a service of its own (`service=`, `PGSERVICE`) cannot
    /// carry an `sslpassword` too, and one that ends with whitespace or holds a line break
    /// cannot go in a service file: both are refused, with the remedy.
    public static func connectionArguments(for databaseURL: String) throws -> (
        conninfo: String, environment: [String: String]
    ) {
        var options = try ConnectionString.options(databaseURL)
        var environment = ClientProgram.environment
        environment.removeValue(forKey: sslPasswordVariable)
        if let password = options.removeValue(forKey: "password") { environment["PGPASSWORD"] = password }
        if let sslPassword = options.removeValue(forKey: "sslpassword"), !sslPassword.isEmpty {
            guard options["service"] == nil, environment["PGSERVICE"] == nil else {
                throw LaunchError(
                    "the connection string has an sslpassword and names a service (service= or PGSERVICE), which "
                        + "client programs cannot both be given without putting the sslpassword on their command "
                        + "line: move the sslpassword into the service's entry in pg_service.conf")
            }
            guard ServiceFile.canHold(sslPassword) else {
                throw LaunchError(
                    "the connection string's sslpassword ends with whitespace or holds a line break, which cannot be "
                        + "handed to client programs in a service file (and is never put on their command line): "
                        + "change the key's passphrase")
            }
            environment[sslPasswordVariable] = sslPassword
        }
        let conninfo = options.sorted { $0.key < $1.key }
            .map { "\($0.key)=\(conninfoQuoted($0.value))" }
            .joined(separator: " ")
        return (conninfo, environment)
    }

    /// Where `connectionArguments(for:)` leaves an `sslpassword` for `run` and `pipeline`,
    /// which take it out of the environment before any program starts.
    static let sslPasswordVariable = "GODWIT_INTERNAL_SSLPASSWORD"

    /// A conninfo value in single quotes as libpq reads them: a backslash or a single quote
    /// inside is escaped with a backslash (`o'neil` is `'o\'neil'`). SQL's doubled quote
    /// (`'o''neil'`) would end the value early.
    public static func conninfoQuoted(_ value: String) -> String {
        var quoted = "'"
        for scalar in value.unicodeScalars {
            if scalar == "\\" || scalar == "'" { quoted.unicodeScalars.append("\\") }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "'"
    }

    // MARK: - Running

    /// Where the first program's stdin comes from.
    enum Input {
        /// `/dev/null`.
        case none
        /// A file in the private directory holding the text.
        case text(String)
        /// An open file, shared with the caller: the program reads from its current offset.
        case descriptor(Int32)
    }

    /// Runs `tool` to its end. Its stdin is `input` (from a file in the private directory)
    /// when given, else the open file `readingFrom` (read from its current offset), else
    /// `/dev/null`. Its stdout is the open file `writingTo` when given (`Output.stdout` is then
    /// empty), else collected.
    ///
    /// An open file, rather than a path, for a file whose contents were checked, or are to be:
    /// a path is looked up again by the program, and may name another file by then.
    public static func run(
        _ tool: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil,
        readingFrom stdin: Int32? = nil, writingTo stdout: Int32? = nil
    ) async throws -> Output {
        precondition(input == nil || stdin == nil, "a program has one stdin")
        let source: Input = input.map { .text($0) } ?? stdin.map { .descriptor($0) } ?? .none
        return try await launch(
            [Invocation(tool, arguments, environment: environment)], input: source, output: stdout)[0]
    }

    /// Runs `producer | consumer`: the producer's stdout flows through a pipe into the
    /// consumer's stdin, so nothing it writes touches the disk. The producer's stdin is the
    /// open file `readingFrom` (from its current offset), or `/dev/null`. Returns when both
    /// have ended; the producer's `stdout` is empty.
    public static func pipeline(
        _ producer: Invocation, into consumer: Invocation, readingFrom stdin: Int32? = nil
    ) async throws -> (producer: Output, consumer: Output) {
        let outputs = try await launch(
            [producer, consumer], input: stdin.map { .descriptor($0) } ?? .none, output: nil)
        return (outputs[0], outputs[1])
    }

    /// Starts the programs, each one's stdout piped into the next one's stdin, and returns
    /// their outputs when all have ended. Cancelling the task kills them.
    private static func launch(_ invocations: [Invocation], input: Input, output: Int32?) async throws -> [Output] {
        var executables: [String] = []
        for invocation in invocations { executables.append(await path(of: invocation.tool)) }
        // The environment is read here, in the task: `Run` starts the programs on other threads.
        let invocations = invocations.map { invocation in
            var invocation = invocation
            invocation.environment = invocation.environment ?? ClientProgram.environment
            return invocation
        }
        let run = try Run(invocations: invocations, executables: executables, input: input, output: output)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                run.start(continuation)
            }
        } onCancel: {
            run.terminate()
        }
    }
}

/// One launch of one or more piped programs: their files, their processes, and the
/// continuation to resume when the last one has ended.
///
/// Sendable through its lock: the termination handlers (on Foundation's threads), the
/// launching task and a cancellation handler all meet in `state`.
private final class Run: Sendable {
    private struct State {
        var processes: [Process] = []
        var ended: [Int: ClientProgram.Output] = [:]
        var launched = false
        var cancelled = false
        var continuation: CheckedContinuation<[ClientProgram.Output], any Error>?
    }

    private let invocations: [ClientProgram.Invocation]
    private let executables: [String]
    private let directory: PrivateDirectory
    /// The caller's open files for the first program's stdin and the last one's stdout.
    private let inputDescriptor: Int32?
    private let outputDescriptor: Int32?
    private let state = Mutex(State())

    init(
        invocations: [ClientProgram.Invocation], executables: [String], input: ClientProgram.Input, output: Int32?
    ) throws {
        self.executables = executables
        outputDescriptor = output
        if case .descriptor(let descriptor) = input { inputDescriptor = descriptor } else { inputDescriptor = nil }
        let directory = try PrivateDirectory()
        self.directory = directory
        do {
            self.invocations = try invocations.enumerated().map { index, invocation in
                var invocation = invocation
                invocation.environment = try Self.handOver(invocation.environment, index: index, directory: directory)
                return invocation
            }
            if case .text(let text) = input { try directory.write("stdin", Array(text.utf8)) }
        } catch {
            directory.remove()
            throw error
        }
    }

    /// The environment a program starts with: an `sslpassword` left by `connectionArguments`
    /// moves into a service file in the private directory (mode 0600, removed with it), which
    /// `PGSERVICEFILE` and `PGSERVICE` name.
    private static func handOver(
        _ environment: [String: String]?, index: Int, directory: PrivateDirectory
    ) throws -> [String: String]? {
        guard var environment, let sslPassword = environment.removeValue(forKey: ClientProgram.sslPasswordVariable)
        else { return environment }
        let name = "pg_service-\(index).conf"
        let text = ServiceFile.text(service: ServiceFile.name, ["sslpassword": sslPassword])
        try directory.write(name, Array(text.utf8))
        environment["PGSERVICEFILE"] = directory.path(name)
        environment["PGSERVICE"] = ServiceFile.name
        return environment
    }

    private func stderrFile(_ index: Int) -> String { "\(index).err" }

    /// Launches every program. Runs on the caller's thread, but does nothing that waits:
    /// it opens files, makes a pipe and spawns processes.
    func start(_ continuation: CheckedContinuation<[ClientProgram.Output], any Error>) {
        state.withLock { $0.continuation = continuation }
        var descriptors: [Int32] = []
        defer { for descriptor in descriptors { close(descriptor) } }
        do {
            let last = invocations.count - 1
            var nextStdin = try input()
            descriptors.append(nextStdin)
            for (index, invocation) in invocations.enumerated() {
                let stdout: Int32
                let followingStdin: Int32
                if index == last {
                    stdout = try outputDescriptor.map(duplicate) ?? directory.create("stdout")
                    followingStdin = -1
                } else {
                    (followingStdin, stdout) = try makePipe()
                    descriptors.append(followingStdin)
                }
                descriptors.append(stdout)
                let stderr = try directory.create(stderrFile(index))
                descriptors.append(stderr)

                let process = Process()
                process.executableURL = URL(fileURLWithPath: executables[index])
                process.arguments = invocation.arguments
                if let environment = invocation.environment { process.environment = environment }
                process.standardInput = FileHandle(fileDescriptor: nextStdin, closeOnDealloc: false)
                process.standardOutput = FileHandle(fileDescriptor: stdout, closeOnDealloc: false)
                process.standardError = FileHandle(fileDescriptor: stderr, closeOnDealloc: false)
                process.terminationHandler = { [self] process in
                    ended(
                        index, status: process.terminationStatus,
                        killedBySignal: process.terminationReason == .uncaughtSignal)
                }
                guard state.withLock({ !$0.cancelled }) else { throw CancellationError() }
                // Process.run() spawns at once and returns; it does not wait for the program.
                do {
                    try process.run()
                } catch {
                    throw ClientProgram.LaunchError(
                        "cannot run \(invocation.tool) (\(executables[index])): \(error.localizedDescription)")
                }
                state.withLock { state in
                    state.processes.append(process)
                    // Cancelled while it was being spawned.
                    if state.cancelled { Self.killRunning(&state) }
                }
                nextStdin = followingStdin
            }
        } catch {
            // The programs started so far are stopped; their ends are ignored.
            let continuation = state.withLock { state in
                Self.killRunning(&state)
                defer { state.continuation = nil }
                return state.continuation
            }
            directory.remove()
            continuation?.resume(throwing: error)
            return
        }
        finishIfDone { $0.launched = true }
    }

    /// The first program's stdin: the caller's open file, the input file, or /dev/null.
    private func input() throws -> Int32 {
        if let inputDescriptor { return try duplicate(inputDescriptor) }
        let path = directory.contains("stdin") ? directory.path("stdin") : "/dev/null"
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ClientProgram.LaunchError("cannot open \(path): \(systemError())") }
        return descriptor
    }

    /// Kills every running program.
    ///
    /// SIGKILL, not SIGTERM: `Process` spawns from the calling thread without resetting the
    /// signal mask, and Dispatch's threads block SIGTERM, so a program may never see it.
    /// Nothing is lost: a killed pg_dump's file is removed, and the server rolls back a killed
    /// psql's transaction.
    func terminate() {
        state.withLock { state in
            state.cancelled = true
            Self.killRunning(&state)
        }
    }

    /// Kills the programs launched whose end has not been reported (after the report, the
    /// process id may already belong to another process).
    private static func killRunning(_ state: inout State) {
        for (index, process) in state.processes.enumerated() where state.ended[index] == nil {
            kill(process.processIdentifier, SIGKILL)
        }
    }

    private func ended(_ index: Int, status: Int32, killedBySignal: Bool) {
        finishIfDone { state in
            state.ended[index] = ClientProgram.Output(status: status, killedBySignal: killedBySignal)
        }
    }

    /// Applies `change`; when every program has been launched and has ended, reads what they
    /// wrote, removes the directory and resumes the task. Runs on the termination handler's
    /// thread for the last program to end (or, when all ended before the launch returned, on
    /// the launching thread, with next to nothing to read).
    private func finishIfDone(_ change: (inout State) -> Void) {
        let done = state.withLock {
            state -> (CheckedContinuation<[ClientProgram.Output], any Error>, [Int: ClientProgram.Output])? in
            change(&state)
            guard state.launched, state.ended.count == invocations.count, let continuation = state.continuation
            else { return nil }
            state.continuation = nil
            return (continuation, state.ended)
        }
        guard let (continuation, ended) = done else { return }
        var outputs: [ClientProgram.Output] = []
        for index in invocations.indices {
            var output = ended[index] ?? ClientProgram.Output(status: -1)
            output.stderr = directory.read(stderrFile(index))
            if index == invocations.count - 1 { output.stdout = directory.read("stdout") }
            outputs.append(output)
        }
        directory.remove()
        continuation.resume(returning: outputs)
    }
}

/// A directory of our own under the temporary folder (`TMPDIR` of `ClientProgram.environment`):
/// mode 0700, made by `mkdtemp`, its files created 0600 and exclusively, so no other user can
/// read or replace what a program writes there.
public struct PrivateDirectory: Sendable {
    public let path: String

    public init() throws {
        let temporary = ClientProgram.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? NSTemporaryDirectory()
        let pattern = (temporary as NSString).appendingPathComponent("godwit-XXXXXX")
        var template = Array(pattern.utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ClientProgram.LaunchError("cannot create a private temporary directory \(pattern): \(systemError())")
        }
        path = String(cString: made)
    }

    public func path(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    public func contains(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    /// Creates `name` (mode 0600) and returns a descriptor open for writing, closed on exec.
    public func create(_ name: String) throws -> Int32 {
        let descriptor = open(path(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ClientProgram.LaunchError("cannot create \(path(name)): \(systemError())") }
        return descriptor
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws {
        let handle = FileHandle(fileDescriptor: try create(name), closeOnDealloc: true)
        do {
            try handle.write(contentsOf: bytes)
            try handle.close()
        } catch {
            throw ClientProgram.LaunchError("cannot write \(path(name)): \(error.localizedDescription)")
        }
    }

    public func read(_ name: String) -> String {
        guard let data = FileManager.default.contents(atPath: path(name)) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A pipe whose ends are closed on exec: only the program given an end (as its stdin or
/// stdout) holds it, so the reader sees the end of the data when the writer exits.
private func makePipe() throws -> (read: Int32, write: Int32) {
    var ends: [Int32] = [0, 0]
    // pipe2(O_CLOEXEC) is not in Glibc's Swift module. Between pipe() and fcntl() a program
    // spawned at that instant by another task could inherit an end, but Foundation closes
    // every other descriptor in the programs it spawns.
    guard pipe(&ends) == 0 else { throw ClientProgram.LaunchError("cannot make a pipe: \(systemError())") }
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    return (ends[0], ends[1])
}

/// A descriptor of the caller's for a program's stdin or stdout, duplicated (closed on exec),
/// so that closing ours after the launch leaves the caller's open. The two share the file's
/// offset.
private func duplicate(_ descriptor: Int32) throws -> Int32 {
    let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
    guard copy >= 0 else {
        throw ClientProgram.LaunchError("cannot duplicate descriptor \(descriptor): \(systemError())")
    }
    return copy
}

/// The message of the last system call's error (`errno`).
private func systemError() -> String {
    String(cString: strerror(errno))
}
