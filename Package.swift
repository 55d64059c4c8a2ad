// swift-tools-version: 6.2
import PackageDescription

/// Our own targets build with warnings as errors; dependencies keep their warnings to themselves.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "Godwit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "godwit", targets: ["godwit"]),
        .library(name: "GodwitPostgres", targets: ["GodwitPostgres"]),
        .library(name: "GodwitBackups", targets: ["GodwitBackups"]),
        .library(name: "GodwitMigrations", targets: ["GodwitMigrations"]),
        .library(name: "GodwitJobs", targets: ["GodwitJobs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "GodwitPostgres",
            dependencies: ["CLibPQ"],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitBackups",
            dependencies: [
                "GodwitPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitMigrations",
            dependencies: [
                "GodwitPostgres",
                "GodwitBackups",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitJobs",
            dependencies: [
                "GodwitPostgres",
                "GodwitBackups",
                "GodwitMigrations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "godwit",
            dependencies: [
                "GodwitPostgres",
                "GodwitBackups",
                "GodwitMigrations",
                "GodwitJobs",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GodwitTestSupport",
            dependencies: ["GodwitPostgres"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitPostgresTests",
            dependencies: ["GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitBackupsTests",
            // GodwitJobs only to install the queue schema, whose `backups` table records backups.
            dependencies: ["GodwitBackups", "GodwitJobs", "GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitJobsTests",
            dependencies: ["GodwitJobs", "GodwitMigrations", "GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GodwitMigrationsTests",
            dependencies: ["GodwitMigrations", "GodwitPostgres", "GodwitTestSupport"],
            swiftSettings: strict
        ),
    ]
)
