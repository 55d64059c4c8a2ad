import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps the database password out of core dumps.
///
/// A `godwit` process holds the connection string (with its password, and an `sslpassword`)
/// in memory from its first instruction: a crash, or `gcore`, would write it to a file anyone
/// who can read the dump directory may read. So before anything else, the process makes
/// itself undumpable and its core file size limit 0, unless `GODWIT_ALLOW_CORE_DUMPS=1` asks
/// for dumps (to debug a crash). The limit is inherited by the client programs it runs
/// (`pg_dump`, `psql`), which get the password too.
enum CoreDumps {
    /// The environment variable that keeps core dumps as the system has them.
    static let allowVariable = "GODWIT_ALLOW_CORE_DUMPS"

    static func disableUnlessAllowed() {
        guard ProcessInfo.processInfo.environment[allowVariable] != "1" else { return }
        // Soft and hard limit: the process, and the programs it starts, cannot raise it again.
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        #if os(Linux)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
            setUndumpable()
        #else
            _ = setrlimit(RLIMIT_CORE, &none)
        #endif
    }

    #if os(Linux)
        /// `prctl(PR_SET_DUMPABLE, 0)`: no core dump even where the kernel pipes dumps to a
        /// program that ignores the size limit, and no `ptrace` attach (gdb, gcore) by other
        /// processes of the same user.
        ///
        /// Glibc's Swift module has no `prctl`, which C declares variadic and Swift cannot call:
        /// it is looked up by name and called with the five arguments the system call takes,
        /// which the Linux calling conventions of x86-64 and arm64 pass as for a variadic call.
        private static func setUndumpable() {
            let setDumpable: Int32 = 4  // PR_SET_DUMPABLE, from <linux/prctl.h>
            // A nil handle is RTLD_DEFAULT: the libc the process is linked with.
            guard let symbol = dlsym(nil, "prctl") else { return }
            typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
            _ = unsafeBitCast(symbol, to: Prctl.self)(setDumpable, 0, 0, 0, 0)
        }
    #endif
}
