import Checkpoints
import Config
import Events
import Foundation
import Kafka
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// The embedded broker keeps about 5 MiB a partition and drops the oldest messages: a consumer that starts after
/// they are gone builds its marts on partial history and says so everywhere (log, check, manifest, /health, API).
@Suite(.serialized) struct PartialHistoryTests {
    @Test func historyDeletedByTheBrokerIsReportedEverywhere() throws {
        let config = try ConfigLoader.load(scenario: "baseline", configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let p = SimulationParameters(config: config, seed: 5, customers: 1500, start: start, end: start.addingMonths(12))
        let broker = try EmbeddedBrokerRunner(partitions: 1, addressFile: nil).start(logger: quiet)
        let delivered = try produce(p, to: broker)
        let consumer = try KafkaConsumer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["group.id": "probe"]), logger: quiet)
        let marks = consumer.queryWatermarks([TopicPartition("engagement", 0)], timeout: .seconds(10))
        consumer.close()
        let low = try #require(marks[TopicPartition("engagement", 0)]?.low)
        try #require(low > 0, "the broker kept every engagement message (\(delivered) produced): nothing to test")

        let dir = tempDir()
        let state = dir.appendingPathComponent("state").path
        let log = dir.appendingPathComponent("consumer.log")
        let c = try launch("marts-consumer", ["--bootstrap-servers", broker.bootstrapServers, "--state-dir", state, "--exit-when-idle", "3",
                                              "--no-alerts"], stderr: log)
        c.waitUntilExit()
        #expect(c.terminationStatus == 0)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        let warnings = lines.filter { $0.contains("marts built on partial history") }
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?.contains("engagement before ") == true && warnings.first?.contains("was deleted by the broker before this consumer saw it") == true)
        #expect(warnings.first?.contains("\(NumberFormatter.localizedString(from: NSNumber(value: low), number: .decimal)) messages") == true, "\(warnings)")

        // check: reported, non-zero unless allowed.
        let (status, out) = try runProcess(try binary("undercurrent").path, ["check", "--state-dir", state])
        #expect(status == 1 && out.contains("partial history: engagement before ") && out.contains("customers were first seen without their sign-up"), "\(out)")
        #expect(try runProcess(try binary("undercurrent").path, ["check", "--state-dir", state, "--allow-partial-history"]).status == 0)

        // manifest.json.
        let export = dir.appendingPathComponent("export")
        #expect(try runProcess(try binary("undercurrent").path, ["marts", "export", "--state-dir", state, "--out", export.path]).status == 0)
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: export.appendingPathComponent("manifest.json"))) as? [String: Any])
        let history = try #require(manifest["history"] as? [String: Any])
        #expect(history["complete"] as? Bool == false)
        let partitions = try #require(history["partitions"] as? [[String: Any]])
        let engagement = try #require(partitions.first { $0["topic"] as? String == "engagement" })
        #expect((engagement["missed_messages"] as? Int).map(Int64.init) == low && engagement["gap"] as? String == "deleted")
        #expect((history["customers_without_signup"] as? Int) != nil)

        // The report, HTML and Markdown: the banner, and the narrative's partial-history finding (the report left the
        // history out: neither said it).
        for (name, banner) in [("r.html", "class=\"banner\""), ("r.md", "> **Partial history")] {
            let out = dir.appendingPathComponent(name).path
            #expect(try runProcess(try binary("undercurrent").path, ["report", "--state-dir", state, "--out", out]).status == 0)
            let text = try String(contentsOfFile: out, encoding: .utf8)
            #expect(text.contains(banner) && text.contains("engagement before") && text.contains("These figures were built without"), "\(name)")
        }

        // The dashboard (from the state directory): banner on every page, /health, /api/history.
        let d = try launch("undercurrent", ["dashboard", "--state-dir", state, "--listen", "127.0.0.1:0"], stderr: dir.appendingPathComponent("dash.log"))
        defer { d.terminate(); d.waitUntilExit() }
        let dport = try #require(boundPort(in: dir.appendingPathComponent("dash.log"), prefix: "dashboard: ", process: d))
        var health = ""
        let end = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < end && !health.contains("\"status\":\"ok\"") { health = httpGet("http://127.0.0.1:\(dport)/health").body }
        #expect(health.contains("\"history\":\"partial\"") && health.contains("engagement before"), "\(health)")
        for page in ["/", "/risk", "/product"] {
            #expect(httpGet("http://127.0.0.1:\(dport)\(page)").body.contains("class=\"banner\""), "no banner on \(page)")
        }
        #expect(httpGet("http://127.0.0.1:\(dport)/api/history").body.contains("\"complete\":false"))
    }
}
