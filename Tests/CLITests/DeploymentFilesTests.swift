import ArgumentParser
import Foundation
import Testing
import TestSupport
import UndercurrentCLI
import Yams

/// The machine that runs the tests has no Docker engine: the compose file is validated against the compose-spec
/// JSON schema, every command line in it is parsed by the executables' own parsers, and the files it mounts and
/// the Dockerfile are checked for what they must hold.
@Suite struct DeploymentFilesTests {
    static let root = repoRoot

    static func compose() throws -> [String: Any] {
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    @Test func composeFileIsValidAgainstTheComposeSpecSchema() throws {
        // scripts/test.sh puts the schema (from the docker-compose 1.29.2 wheel on PyPI) and a Python with jsonschema
        // and PyYAML (dbt's own dependencies) under .build.
        let schema = Self.root.appendingPathComponent(".build/compose-spec/compose_spec.json")
        let python = Self.root.appendingPathComponent(".build/venv/bin/python")
        guard FileManager.default.fileExists(atPath: schema.path), FileManager.default.isExecutableFile(atPath: python.path) else {
            throw TestSetupError("the compose-spec schema or .build/venv is missing: run scripts/test.sh")
        }
        let script = """
            import json, sys, yaml, jsonschema
            schema = json.load(open(sys.argv[1]))
            doc = yaml.safe_load(open(sys.argv[2]))
            errors = list(jsonschema.Draft201909Validator(schema).iter_errors(doc))
            for e in errors: print("/".join(map(str, e.path)), e.message)
            sys.exit(1 if errors else 0)
            """
        let (status, output) = try runProcess(python.path, ["-c", script, schema.path, Self.root.appendingPathComponent("docker-compose.yml").path])
        #expect(status == 0, "docker-compose.yml does not follow the compose spec: \(output)")
        // The validator does reject a file that breaks the schema.
        let broken = tempDir().appendingPathComponent("broken.yml")
        try "services:\n  a:\n    image: x\n    stop_grace: 1s\n".write(to: broken, atomically: true, encoding: .utf8)
        #expect(try runProcess(python.path, ["-c", script, schema.path, broken.path]).status == 1)
    }

    @Test func everyServiceHasAHealthcheckAndTheStackHasItsPartsAndPorts() throws {
        let doc = try Self.compose()
        let services = try #require(doc["services"] as? [String: Any])
        for name in ["kafka", "kafka-init", "postgres", "billing-producer", "payments-producer", "engagement-producer", "marts-consumer",
                     "prometheus", "grafana"] {
            let s = try #require(services[name] as? [String: Any], "service \(name) missing")
            #expect((s["healthcheck"] as? [String: Any])?["test"] != nil, "\(name) has no healthcheck")
        }
        let kafka = try #require(services["kafka"] as? [String: Any])
        #expect(((kafka["environment"] as? [String: Any])?["KAFKA_PROCESS_ROLES"] as? String)?.contains("controller") == true)
        func ports(_ name: String) -> [String] { ((services[name] as? [String: Any])?["ports"] as? [String]) ?? [] }
        #expect(ports("kafka").contains("9092:9092"), "Kafka's external listener")
        #expect(ports("marts-consumer").contains("8080:8080"), "the dashboard")
        #expect(ports("grafana").contains("3000:3000"))
        // A producer's flush may take its 120 s timeout: the grace period covers it.
        for name in ["billing-producer", "payments-producer", "engagement-producer"] {
            let s = try #require(services[name] as? [String: Any])
            let grace = try #require(s["stop_grace_period"] as? String)
            #expect(grace.hasSuffix("s") && (Int(grace.dropLast()) ?? 0) > 120, "\(name): stop_grace_period \(grace)")
        }
        // The consumer mirrors the marts into the PostgreSQL service, the password from the environment.
        let consumer = try #require(services["marts-consumer"] as? [String: Any])
        let command = try #require(consumer["command"] as? [String])
        let uri = try #require(command.firstIndex(of: "--postgres").map { command[$0 + 1] })
        #expect(uri.hasPrefix("postgresql://") && uri.contains("@postgres:5432/") && !uri.contains(":undercurrent@"))
        #expect((consumer["environment"] as? [String: Any])?["PGPASSWORD"] != nil)
        #expect(((consumer["depends_on"] as? [String: Any])?["postgres"] as? [String: Any])?["condition"] as? String == "service_healthy")
        // Prometheus and Grafana mount files that exist in the repository.
        for name in ["prometheus", "grafana"] {
            let s = try #require(services[name] as? [String: Any])
            for volume in s["volumes"] as? [String] ?? [] where volume.hasPrefix("./") {
                let path = String(volume.dropFirst(2).prefix { $0 != ":" })
                #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path), "\(name) mounts \(path)")
            }
        }
    }

    /// Each Undercurrent service's command parses (and validates) with its executable's own parser, serves metrics on
    /// the port Prometheus scrapes, and Prometheus' targets are exactly these services.
    @Test func everyCommandLineParsesWithItsExecutablesParserAndPrometheusScrapesEachOne() throws {
        let services = try #require(try Self.compose()["services"] as? [String: Any])
        var scraped: Set<String> = []
        var built = 0
        for (name, value) in services {
            let s = try #require(value as? [String: Any])
            guard s["build"] as? String == "." else { continue }
            built += 1
            let command = try #require(s["command"] as? [String], "\(name) has no command")
            let args = Array(command.dropFirst())
            do {
                switch command.first {
                case "billing-producer": _ = try BillingProducer.parse(args)
                case "payments-producer": _ = try PaymentsProducer.parse(args)
                case "engagement-producer": _ = try EngagementProducer.parse(args)
                case "marts-consumer": _ = try MartsConsumerCommand.parse(args)
                case "undercurrent": _ = try Undercurrent.parseAsRoot(args)
                default: Issue.record("\(name): unknown executable \(command.first ?? "")")
                }
            } catch {
                Issue.record("\(name): \(command.joined(separator: " ")) does not parse: \(BillingProducer.message(for: error))")
            }
            let listen = try #require(command.firstIndex(of: "--metrics-listen").map { command[$0 + 1] }, "\(name) serves no metrics")
            #expect(listen == "0.0.0.0:9464", "\(name): the image's HEALTHCHECK and Prometheus expect port 9464")
            scraped.insert("\(name):9464")
            #expect((s["depends_on"] as? [String: Any])?["kafka-init"] != nil, "\(name) waits for the topics")
        }
        #expect(built == 4)
        let prometheus = try #require(try Yams.load(yaml: String(contentsOf: Self.root.appendingPathComponent("deploy/prometheus/prometheus.yml"),
                                                                     encoding: .utf8)) as? [String: Any])
        var targets: Set<String> = []
        for job in prometheus["scrape_configs"] as? [[String: Any]] ?? [] {
            for config in job["static_configs"] as? [[String: Any]] ?? [] { targets.formUnion(config["targets"] as? [String] ?? []) }
        }
        #expect(targets == scraped)
    }

    @Test func dockerfileBuildsOnlyTheShippedExecutablesAndRunsAsNonRoot() throws {
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let lines = dockerfile.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(dockerfile.contains("libpq-dev") && dockerfile.contains("libpq5"))
        // Only the five products, never the benchmark harness or the tests.
        #expect(dockerfile.contains("swift build -c release --product"))
        #expect(!dockerfile.contains("undercurrent-bench") && !dockerfile.contains("--build-tests"))
        for product in ["undercurrent", "billing-producer", "payments-producer", "engagement-producer", "marts-consumer"] {
            #expect(dockerfile.contains(".build/release/\(product)"))
        }
        let user = try #require(lines.last { $0.hasPrefix("USER ") })
        #expect(user != "USER root" && user != "USER 0")
        #expect(lines.contains { $0.hasPrefix("EXPOSE ") && $0.contains("8080") && $0.contains("9464") })
        #expect(lines.contains { $0.hasPrefix("HEALTHCHECK ") })
        let ignore = try String(contentsOf: Self.root.appendingPathComponent(".dockerignore"), encoding: .utf8).split(separator: "\n")
        #expect(ignore.contains(".build") && ignore.contains(".git"))
    }
}

/// Runs a program to its end; its exit status and what it printed (standard output and error).
func runProcess(_ path: String, _ args: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}
