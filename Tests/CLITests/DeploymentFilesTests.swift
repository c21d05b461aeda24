import Foundation
import Testing
import TestSupport
import Yams

/// The machine that runs the tests has no Docker engine; these checks parse the files as far as possible.
@Suite struct DeploymentFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func dockerComposeIsValidYAMLWithKafkaInKRaftModeAndTheServices() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(doc["services"] as? [String: Any])
        for name in ["kafka", "kafka-init", "billing-producer", "payments-producer", "engagement-producer", "marts-consumer"] {
            #expect(services[name] != nil, "service \(name) missing")
        }
        let kafka = try #require(services["kafka"] as? [String: Any])
        let env = try #require(kafka["environment"] as? [String: Any])
        #expect((env["KAFKA_PROCESS_ROLES"] as? String)?.contains("controller") == true)
        // Every service that uses the anchor builds from the Dockerfile and waits for the topic initialiser.
        for name in ["billing-producer", "payments-producer", "engagement-producer", "marts-consumer"] {
            let s = try #require(services[name] as? [String: Any])
            #expect(s["build"] as? String == ".")
            let deps = try #require(s["depends_on"] as? [String: Any])
            #expect(deps["kafka-init"] != nil)
            let command = try #require(s["command"] as? [String])
            #expect(command.first == name)
        }
        // The consumer mirrors the marts into the PostgreSQL service, the password from the environment.
        let consumer = try #require(services["marts-consumer"] as? [String: Any])
        let command = try #require(consumer["command"] as? [String])
        let uri = try #require(command.firstIndex(of: "--postgres").map { command[$0 + 1] })
        #expect(uri.hasPrefix("postgresql://") && uri.contains("@postgres:5432/") && !uri.contains(":undercurrent@"))
        #expect((consumer["environment"] as? [String: Any])?["PGPASSWORD"] != nil)
        #expect(((consumer["depends_on"] as? [String: Any])?["postgres"] as? [String: Any])?["condition"] as? String == "service_healthy")
        #expect((services["postgres"] as? [String: Any])?["healthcheck"] != nil)
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("libpq-dev") && dockerfile.contains("libpq5"))
    }
}
