import Crypto
import Foundation
import GodwitPostgres

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A backup file, open: `pg_dump` writes it, and `pg_restore` and the SHA-256 read it, through
/// this one descriptor, never through its path.
///
/// A path is looked up again by each program that opens it, so a file swapped between the
/// check and the use (verified, then another restored) would go unnoticed; an open file stays
/// the file that was checked. Only a trusted file is opened: in a folder owned by this user
/// and writable by no one else, owned by this user and writable by no one else (see
/// `requireTrusted`).
///
/// Sendable: the descriptor is immutable and closed only when the last reference goes.
final class BackupFile: Sendable {
    /// The file's absolute path, as recorded and printed.
    let path: String
    let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Creates a new, empty file named after `stem` (`stem.dump`, else `stem-2.dump`...) in
    /// `directory`, which is made (mode 0700) when missing. The file is created exclusively
    /// (never one that exists, never through a symbolic link), mode 0600, open for reading and
    /// writing, so no other user can ever read what is written into it.
    static func create(in directory: String, stem: String) throws -> BackupFile {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BackupError(
                .io, file: directory, "cannot create the backup folder \(directory): \(error.localizedDescription)")
        }
        let folder = try openFolder(directory)
        defer { close(folder) }
        for counter in 1...1000 {
            let name = counter == 1 ? "\(stem).dump" : "\(stem)-\(counter).dump"
            let path = (directory as NSString).appendingPathComponent(name)
            let descriptor = openat(folder, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if descriptor >= 0 { return BackupFile(path: path, descriptor: descriptor) }
            guard errno == EEXIST else {
                throw BackupError(.io, file: path, "cannot create backup file \(path): \(systemError())")
            }
        }
        throw BackupError(.io, file: directory, "cannot create a backup file in \(directory): too many named \(stem)")
    }

    /// Opens the backup file at `path` (absolute) for reading, after checking its folder, and
    /// then the file itself (through the open descriptor, so the file checked is the file
    /// read).
    static func open(_ path: String) throws -> BackupFile {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let folder: Int32
        do {
            folder = try openFolder(directory)
        } catch let error as BackupError where error.code == .missingFile {
            throw BackupError(.missingFile, file: path, "no backup file \(path)")
        }
        defer { close(folder) }
        let descriptor = openat(folder, name, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { throw BackupError(.missingFile, file: path, "no backup file \(path)") }
            throw BackupError(.io, file: path, "cannot open backup file \(path): \(systemError())")
        }
        let file = BackupFile(path: path, descriptor: descriptor)
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw BackupError(.io, file: path, "cannot read backup file \(path): \(systemError())")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw BackupError(.untrusted, file: path, "refusing backup file \(path): it is not a regular file")
        }
        try requireTrusted(info, "backup file", path)
        return file
    }

    /// The descriptor, its offset moved to the start of the file: for a program that reads the
    /// whole file, or writes it from the start, as its stdin or stdout.
    func fromStart() throws -> Int32 {
        guard lseek(descriptor, 0, SEEK_SET) == 0 else {
            throw BackupError(.io, file: path, "cannot read backup file \(path): \(systemError())")
        }
        return descriptor
    }

    /// Removes the file (one that failed to be made). Its folder is trusted, so the path still
    /// names this file.
    func remove() {
        unlink(path)
    }

    /// The file's size and SHA-256 (hex), read on a thread of its own: hashing a dump of
    /// gigabytes must not hold a thread of the cooperative pool. `pread` leaves the offset a
    /// program may be using alone.
    func sizeAndSHA256() async throws -> (Int64, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread { [self] in
                continuation.resume(
                    with: Result {
                        var hasher = SHA256()
                        var size: Int64 = 0
                        var buffer = [UInt8](repeating: 0, count: 1 << 20)
                        while true {
                            let count = buffer.withUnsafeMutableBytes {
                                pread(descriptor, $0.baseAddress, $0.count, off_t(size))
                            }
                            if count < 0, errno == EINTR { continue }
                            guard count >= 0 else {
                                throw BackupError(.io, file: path, "cannot read backup file \(path): \(systemError())")
                            }
                            if count == 0 { break }
                            hasher.update(data: buffer[..<count])
                            size += Int64(count)
                        }
                        return (size, hasher.finalize().hexEncoded)
                    })
            }.start()
        }
    }

    /// Opens `directory` and checks it (`requireTrusted`); the descriptor is the folder
    /// checked, whatever happens to the path afterwards.
    private static func openFolder(_ directory: String) throws -> Int32 {
        let folder = openPath(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else {
            if errno == ENOENT { throw BackupError(.missingFile, file: directory, "no backup folder \(directory)") }
            throw BackupError(.io, file: directory, "cannot open the backup folder \(directory): \(systemError())")
        }
        var info = stat()
        do {
            guard fstat(folder, &info) == 0 else {
                throw BackupError(.io, file: directory, "cannot open the backup folder \(directory): \(systemError())")
            }
            try requireTrusted(info, "backup folder", directory)
        } catch {
            close(folder)
            throw error
        }
        return folder
    }

    /// Refuses a folder or file that another user owns, or that group or others may write:
    /// another user could then put a file of theirs in its place, or change it. The sticky
    /// bit does not help: it keeps others from removing or renaming what is there, not from
    /// adding files.
    private static func requireTrusted(_ info: stat, _ what: String, _ path: String) throws {
        let user = geteuid()
        guard info.st_uid == user else {
            throw BackupError(
                .untrusted, file: path,
                "refusing \(what) \(path): it is owned by uid \(info.st_uid), not by this user (uid \(user)); "
                    + "use one of your own")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o022 == 0 else {
            let octal = String(mode, radix: 8)
            let sticky = mode & 0o1000 != 0 ? ", even with the sticky bit" : ""
            let shown = octal.count < 4 ? "0" + octal : octal
            throw BackupError(
                .untrusted, file: path,
                "refusing \(what) \(path): group or others may write to it (mode \(shown)\(sticky)); "
                    + "chmod go-w it, or use one only you can write to")
        }
    }
}

/// `open(2)`, which `BackupFile.open` hides inside the type.
private func openPath(_ path: String, _ flags: Int32) -> Int32 {
    open(path, flags)
}

/// The message of the last system call's error (`errno`).
private func systemError() -> String {
    String(cString: strerror(errno))
}
