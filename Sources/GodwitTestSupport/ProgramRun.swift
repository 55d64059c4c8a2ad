import Foundation

/// Runs `program` with `arguments` to its end and returns its exit status and its stdout and
/// stderr together, in the order written (both go to one file). `environment` replaces the
/// test's own when given; `input` is the program's stdin (empty by default). The wait happens
/// on a Dispatch thread, never on the cooperative pool.
public func runProgram(
    _ program: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
    input: String = ""
) async throws -> (status: Int32, output: String) {
    let files = try TemporaryDirectory(prefix: "program")
    defer { files.delete() }
    let inputFile = try files.write("input", input)
    let outputFile = try files.write("output", "")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputFile))
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputFile))
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            process.waitUntilExit()
            continuation.resume()
        }
    }
    try? handle.close()
    return (process.terminationStatus, (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "")
}

/// The checksum by the coreutils tool, to check ours against an independent implementation.
public func sha384sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha384sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(96))
}
