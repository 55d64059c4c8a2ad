import Foundation
import Testing

/// The modules' dependencies point one way (issue 21): GodwitPostgres underneath everything;
/// migrations, backups and the queue each over it alone; the jobs that run on the queue over
/// those; zero-downtime column changes and fleets, each over the jobs; the HTTP surface, then
/// the CLI library, then the `godwit` executable on top. Read from `Package.swift` and from every `import` in `Sources/`, so that neither a declared dependency
/// nor an import that a transitive dependency happens to make visible can point backwards.
@Suite("The module graph")
struct ModuleGraphTests {
    /// What each Godwit target may depend on. A target missing here fails the test: a new module
    /// takes its place in the graph on purpose.
    static let allowed: [String: Set<String>] = {
        let base: Set<String> = ["GodwitPostgres"]
        let owners: Set<String> = base.union(["GodwitMigrations", "GodwitBackups", "GodwitQueue"])
        let jobs = owners.union(["GodwitJobs"])
        let changes = jobs.union(["GodwitChanges"])
        let fleet = jobs.union(["GodwitFleet"])
        let http = changes.union(fleet).union(["GodwitHTTP"])
        return [
            "CLibPQ": [],
            "GodwitPostgres": ["CLibPQ"],
            "GodwitMigrations": base,
            "GodwitBackups": base,
            "GodwitQueue": base,
            "GodwitJobs": owners,
            "GodwitChanges": jobs,
            "GodwitFleet": jobs,
            "GodwitHTTP": changes.union(fleet),
            "GodwitCLI": http,
            "godwit": ["GodwitCLI"],
            // Test support may reach anything but the executable.
            "GodwitTestSupport": http.union(["GodwitCLI"]),
        ]
    }()

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every target `Package.swift` declares (test targets aside), with the names of the
    /// package's own targets among its dependencies (products of other packages aside).
    static func declaredTargets() throws -> [String: Set<String>] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var targets: [String: Set<String>] = [:]
        // Each `.target(`, `.executableTarget(` or `.systemLibrary(` up to the next target.
        let starts = manifest.ranges(of: /\.(target|executableTarget|systemLibrary|testTarget)\(/)
        for (index, start) in starts.enumerated() {
            let end = index + 1 < starts.count ? starts[index + 1].lowerBound : manifest.endIndex
            let block = manifest[start.lowerBound..<end]
            guard !block.hasPrefix(".testTarget"), let name = block.firstMatch(of: /name: "([^"]+)"/)?.1 else {
                continue
            }
            var dependencies: Set<String> = []
            if let list = block.firstMatch(of: /dependencies: \[([^\]]*)\]/)?.1 {
                // Quoted names only: `.product(name: "X", package: "y")` entries are not targets.
                let withoutProducts = list.replacing(/\.product\([^)]*\)/, with: "")
                for match in withoutProducts.matches(of: /"([^"]+)"/) { dependencies.insert(String(match.1)) }
            }
            targets[String(name)] = dependencies
        }
        return targets
    }

    @Test func everyTargetIsPlacedInTheGraph() throws {
        let targets = try Self.declaredTargets()
        #expect(targets.count >= 10, "read \(targets.count) targets from Package.swift")
        for name in targets.keys.sorted() {
            #expect(Self.allowed[name] != nil, "Package.swift declares \(name), which has no place in the module graph")
        }
    }

    @Test func noDeclaredDependencyPointsBackwards() throws {
        for (name, dependencies) in try Self.declaredTargets().sorted(by: { $0.key < $1.key }) {
            let backwards = dependencies.subtracting(Self.allowed[name] ?? [])
            #expect(backwards.isEmpty, "\(name) depends on \(backwards.sorted()) against the module graph")
        }
    }

    @Test func noImportPointsBackwards() throws {
        let targets = try Self.declaredTargets()
        let modules = Set(targets.keys)
        var filesRead = 0
        for (name, dependencies) in targets.sorted(by: { $0.key < $1.key }) {
            let folder = Self.root.appendingPathComponent("Sources/\(name)")
            guard let files = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                filesRead += 1
                for line in text.split(separator: "\n") {
                    guard let imported = line.firstMatch(of: /^\s*(?:@testable\s+)?import\s+(\w+)/)?.1 else { continue }
                    let module = String(imported)
                    guard modules.contains(module), module != name else { continue }
                    #expect(
                        dependencies.contains(module),
                        "Sources/\(name)/\(file) imports \(module), which \(name) does not declare")
                    #expect(
                        Self.allowed[name]?.contains(module) == true,
                        "Sources/\(name)/\(file) imports \(module) against the module graph")
                }
            }
        }
        #expect(filesRead > 100, "read \(filesRead) source files")
    }

    /// Test targets match the modules: `<Module>Tests` for a module's database tests and
    /// `<Module>UnitTests` for its pure ones (run by ops/test with no database), with this one.
    @Test func testTargetsMatchTheModules() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let modules = Set(try Self.declaredTargets().keys)
        let testTargets = manifest.matches(of: /\.testTarget\(\s*(?:\/\/[^\n]*\n\s*)*name: "([^"]+)"/).map {
            String($0.1)
        }
        #expect(testTargets.count >= 10, "read \(testTargets.count) test targets from Package.swift")
        for name in testTargets where name != "GodwitStructureTests" {
            let module = name.replacing(/(Unit)?Tests$/, with: "")
            #expect(modules.contains(module) && name != module, "test target \(name) is named after no module")
        }
    }
}

/// GodwitHTTP reads tables through the libraries that own them (`JobQueue`, `BatchHistory`,
/// `BackupRecords`, `LedgerReader`), never with SQL of its own: no `FROM`, `JOIN`, `INTO`,
/// `UPDATE` or `TABLE` in its sources names a table or view that an owner's SQL creates, nor
/// one whose name is interpolated (the migrations ledger's).
@Suite("GodwitHTTP reads through the libraries")
struct HTTPReadsThroughLibrariesTests {
    /// The tables and views the owners' new-install SQL creates (`Sources/*/Resources/*.sql`;
    /// the released steps in `legacy/` make the same).
    static func ownedRelations() throws -> Set<String> {
        let sources = ModuleGraphTests.root.appendingPathComponent("Sources")
        var names: Set<String> = []
        guard let files = FileManager.default.enumerator(atPath: sources.path) else { return names }
        for case let file as String in files
        where file.hasSuffix(".sql") && file.contains("/Resources/") && !file.contains("/legacy/") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: /CREATE (?:TABLE|VIEW) @schema@\.(\w+)/) { names.insert(String(match.1)) }
        }
        return names
    }

    @Test func noSQLOfGodwitHTTPNamesATableOfAnotherModule() throws {
        let owned = try Self.ownedRelations()
        #expect(
            owned.isSuperset(of: ["jobs", "workers", "backups", "batches", "job_progress", "progress", "backup_files"]))
        let folder = ModuleGraphTests.root.appendingPathComponent("Sources/GodwitHTTP")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 10)
        let alternatives = owned.sorted().joined(separator: "|")
        // Simple word boundaries: Unicode's would read `schema.batches` as one word.
        let naming = try Regex(#"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+\S*?\b("# + alternatives + #")\b"#)
            .wordBoundaryKind(.simple)
        let qualifying = try Regex(#"qualified\("(?:"# + alternatives + #")"\)"#)
        // A relation named by a value: the migrations ledger (sqlx.toml's table-name), read
        // through GodwitMigrations' `LedgerReader`.
        let interpolated = try Regex(#"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+\\\("#).wordBoundaryKind(.simple)
        // The matchers find what the dashboard's SQL once said.
        #expect(#"FROM \(schema.batches) WHERE job_id = $1"#.contains(naming))
        #expect(#"LEFT JOIN \(schema.qualified("backup_files")) f"#.contains(qualifying))
        #expect(#"INSERT INTO godwit.job_progress (job_id)"#.contains(naming))
        #expect(#"FROM \(ledger) ORDER BY version"#.contains(interpolated))
        #expect(!#"FROM pg_catalog.pg_locks l"#.contains(naming))
        for file in files.sorted() {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                let named = line.contains(naming) || line.contains(qualifying) || line.contains(interpolated)
                #expect(!named, "Sources/GodwitHTTP/\(file):\(index + 1) names a table of another module: \(line)")
            }
        }
    }
}
