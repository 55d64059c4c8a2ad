// swift-tools-version: 6.2
import PackageDescription

/// Our own targets build with warnings as errors; dependencies keep their warnings to themselves.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

/// How the release `godwit` is linked on Linux, for a smaller resident set (issue 20). Every page
/// of the 140 MB binary that the worker maps counts in its RSS, and the kernel maps them 64 KB
/// around each page touched. Peak RSS of `godwit worker --drain --concurrency 1` draining one
/// batched job over 200,000 rows, three runs each, the binary evicted from the page cache first:
/// 32.7 MB linked as swiftc does by default (gold, PIE, every symbol exported), then:
/// - `--no-export-dynamic` undoes the `-export-dynamic` of the static Swift runtime's link
///   arguments, which put 30,000 symbols in the dynamic symbol table, through which every
///   library that libpq loads looked up its own symbols at startup: 31.4 MB;
/// - `--symbol-ordering-file` (lld's, hence `-use-ld=lld`) places the code the worker runs
///   together (ops/link-order.txt, made by ops/link-order): the 1.3 MB of it had been spread over
///   12.8 MB of 64 KB blocks: 25.4 MB. SwiftPM does not know that the link reads the file:
///   ops/link-order removes the binary so that the next build links again.
/// Debug builds (the tests) link as before.
let releaseLinkFlags = [
    "-use-ld=lld",
    "-Xlinker", "--no-export-dynamic",
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/ops/link-order.txt",
    // A symbol of the list that this build lacks (renamed since, or from another platform) is no error.
    "-Xlinker", "--no-warn-symbol-ordering",
]

let package = Package(
    name: "Godwit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "godwit", targets: ["godwit"]),
        .library(name: "GodwitPostgres", targets: ["GodwitPostgres"]),
        .library(name: "GodwitBackups", targets: ["GodwitBackups"]),
        .library(name: "GodwitMigrations", targets: ["GodwitMigrations"]),
        .library(name: "GodwitQueue", targets: ["GodwitQueue"]),
        .library(name: "GodwitJobs", targets: ["GodwitJobs"]),
        .library(name: "GodwitChanges", targets: ["GodwitChanges"]),
        .library(name: "GodwitFleet", targets: ["GodwitFleet"]),
        .library(name: "GodwitHTTP", targets: ["GodwitHTTP"]),
        .library(name: "GodwitCLI", targets: ["GodwitCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "GodwitPostgres",
            dependencies: [
                "CLibPQ",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitBackups",
            dependencies: [
                "GodwitPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.embedInCode("Resources/backups_schema.sql")],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitMigrations",
            dependencies: [
                "GodwitPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitQueue",
            dependencies: [
                "GodwitPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("Resources/queue.sql")],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitJobs",
            dependencies: [
                "GodwitPostgres",
                "GodwitMigrations",
                "GodwitBackups",
                "GodwitQueue",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                // The jobs' part, by concern, installed in the order `SchemaPart.jobs` names.
                .embedInCode("Resources/jobs_progress.sql"), .embedInCode("Resources/jobs_enqueue.sql"),
                .embedInCode("Resources/jobs_parallel.sql"), .embedInCode("Resources/jobs_checkpoint.sql"),
                .embedInCode("Resources/jobs_backups.sql"), .embedInCode("Resources/jobs_rights.sql"),
                // The steps before owners, for a database that stopped short of the last.
                .embedInCode("Resources/legacy/queue_schema.sql"), .embedInCode("Resources/legacy/queue_schema_2.sql"),
                .embedInCode("Resources/legacy/queue_schema_3.sql"),
                .embedInCode("Resources/legacy/queue_schema_4.sql"),
                .embedInCode("Resources/legacy/queue_schema_5.sql"),
            ],
            swiftSettings: strict
        ),
        .target(
            // Zero-downtime column changes (expand/contract), over the queue and its jobs.
            name: "GodwitChanges",
            dependencies: [
                "GodwitPostgres", "GodwitMigrations", "GodwitQueue", "GodwitJobs",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                // The changes' part, by concern, installed in the order `SchemaPart.changes` names.
                .embedInCode("Resources/changes_records.sql"), .embedInCode("Resources/changes_readers.sql"),
                .embedInCode("Resources/changes_view.sql"), .embedInCode("Resources/changes_rights.sql"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitFleet",
            dependencies: [
                "GodwitPostgres", "GodwitMigrations", "GodwitQueue", "GodwitJobs",
                .product(name: "Logging", package: "swift-log"),
            ],
            // The fleets' part of the control database's schema (owner `fleet`).
            resources: [.embedInCode("Resources/fleet_schema.sql")],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitHTTP",
            dependencies: [
                "GodwitPostgres",
                "GodwitMigrations",
                "GodwitBackups",
                "GodwitQueue",
                // The batch history a job page and /metrics show.
                "GodwitJobs",
                // The changes page and the changes' phases in /metrics.
                "GodwitChanges",
                "GodwitFleet",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitCLI",
            dependencies: [
                "GodwitPostgres",
                "GodwitBackups",
                "GodwitMigrations",
                "GodwitQueue",
                "GodwitJobs",
                "GodwitChanges",
                "GodwitFleet",
                "GodwitHTTP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "godwit",
            dependencies: ["GodwitCLI"],
            swiftSettings: strict,
            linkerSettings: [.unsafeFlags(releaseLinkFlags, .when(platforms: [.linux], configuration: .release))]
        ),
        .target(
            name: "GodwitTestSupport",
            // GodwitCLI for `GodwitCommand`, which runs a command line in-process.
            dependencies: ["GodwitPostgres", "GodwitQueue", "GodwitCLI"],
            swiftSettings: strict
        ),
        // The commands: parsing (in-process), the in-process runner, and what needs the
        // `godwit` process itself (signals, kill, exit codes, concurrent runs, secrets on stderr).
        .testTarget(
            name: "GodwitCLITests",
            dependencies: [
                "GodwitCLI", "GodwitMigrations", "GodwitQueue", "GodwitPostgres", "GodwitTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            // Pure too: reads Package.swift and Sources/ (the module graph).
            name: "GodwitStructureTests",
            swiftSettings: strict
        ),
        // Pure tests: no database, no server, no godwit process. ops/test runs them first with no
        // TEST_DATABASE_URL, so one that reaches for a database fails there.
        .testTarget(
            name: "GodwitPostgresUnitTests",
            dependencies: ["GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitMigrationsUnitTests",
            // Crypto directly, so checksum tests compute sqlx's rule without Godwit's code.
            dependencies: [
                "GodwitMigrations", "GodwitTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitQueueUnitTests",
            dependencies: ["GodwitQueue", "GodwitPostgres"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitJobsUnitTests",
            dependencies: ["GodwitJobs", "GodwitQueue", "GodwitPostgres"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitChangesUnitTests",
            // GodwitMigrations for the lint findings a change file is written from.
            dependencies: ["GodwitChanges", "GodwitMigrations"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitFleetUnitTests",
            // GodwitMigrations for a folder's checksums, which resume compares.
            dependencies: ["GodwitFleet", "GodwitPostgres", "GodwitMigrations"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitHTTPUnitTests",
            dependencies: ["GodwitHTTP", "GodwitFleet", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitCLIUnitTests",
            dependencies: ["GodwitCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitPostgresTests",
            dependencies: ["GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitBackupsTests",
            dependencies: ["GodwitBackups", "GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitJobsTests",
            dependencies: [
                "GodwitQueue", "GodwitJobs", "GodwitMigrations", "GodwitBackups", "GodwitPostgres", "GodwitTestSupport",
            ],
            // Read by path: the jobs part as one file, before it was split (JobsSchemaFilesTests).
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitChangesTests",
            dependencies: [
                "GodwitChanges", "GodwitJobs", "GodwitQueue", "GodwitMigrations", "GodwitPostgres", "GodwitTestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            // Fleets over three private clusters: GodwitCLI to run the fleet commands in-process.
            name: "GodwitFleetTests",
            dependencies: [
                "GodwitFleet", "GodwitCLI", "GodwitMigrations", "GodwitPostgres", "GodwitTestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitHTTPTests",
            dependencies: [
                // GodwitJobs to install the whole schema, as a worker does; GodwitChanges its changes' part.
                "GodwitHTTP", "GodwitMigrations", "GodwitQueue", "GodwitJobs", "GodwitChanges", "GodwitFleet",
                "GodwitPostgres", "GodwitTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitMigrationsTests",
            // Crypto directly, so checksum tests compute sqlx's rule without Godwit's code.
            dependencies: [
                "GodwitMigrations", "GodwitPostgres", "GodwitTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
    ]
)
