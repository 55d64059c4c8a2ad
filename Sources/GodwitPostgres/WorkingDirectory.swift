import Foundation

/// The folder against which the relative paths a person gives are opened: the process's
/// current directory for the `godwit` executable, another one for a command run in-process
/// (tests run many at once in one process, each in a folder of its own, and never `chdir`).
///
/// Only the opening changes: a message names a path as the person wrote it (`migrations`,
/// `sqlx.toml`, `jobs/backfill.sql`), relative or not, so that the same command prints the same
/// lines in-process and as its own process.
public struct WorkingDirectory: Sendable, Equatable {
    /// The folder, absolute.
    public let path: String

    /// `path`, made absolute against the process's current directory when relative.
    public init(_ path: String) {
        self.path =
            path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }

    /// The process's current directory, as it is now.
    public static var process: WorkingDirectory { WorkingDirectory(FileManager.default.currentDirectoryPath) }

    /// Where `given` is opened: itself when absolute, else inside this folder.
    public func resolve(_ given: String) -> String {
        given.hasPrefix("/") ? given : (path as NSString).appendingPathComponent(given)
    }
}
