import Foundation
import Kafka
import UndercurrentCLI
import Testing
import TestSupport

/// A cluster that does not answer: one line when it goes away, one when it is back; meanwhile the progress line
/// and /health say the consumer is waiting for it, never "consuming".
@Suite(.serialized) struct ClusterStateTests {
    /// Waits (on what the process wrote, not on time) until `log` holds `count` lines containing `text`.
    static func waitForLines(_ log: URL, containing text: String, count: Int, process: Process) -> [Substring] {
        let end = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < end && process.isRunning {
            let lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.filter({ $0.contains(text) }).count >= count { return lines }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    @Test func anUnreachableBrokerIsOneLineAndTheConsumerSaysItIsWaiting() throws {
        let dir = tempDir()
        let log = dir.appendingPathComponent("consumer.log")
        let nobody = "127.0.0.1:\(PostgresServer.freePort())"
        let p = try launch("marts-consumer", ["--bootstrap-servers", nobody, "--state-dir", dir.appendingPathComponent("s").path,
                                              "--report-seconds", "0.3", "--serve", "127.0.0.1:0", "--no-alerts"], stderr: log)
        defer { if p.isRunning { p.terminate(); p.waitUntilExit() } }
        let lines = Self.waitForLines(log, containing: "waiting for the cluster", count: 4, process: p)
        #expect(lines.filter { $0.contains("waiting for the cluster") }.count >= 4, "\(lines.suffix(20))")
        #expect(!lines.contains { $0.contains(" consuming") }, "the progress line said consuming while no broker answered")
        #expect(lines.filter { $0.contains("Kafka cluster unreachable") }.count == 1, "\(lines.filter { $0.contains("Kafka") })")
        #expect(!lines.contains { $0.contains("Connection refused") && !$0.contains("cluster unreachable") }, "\(lines.filter { $0.contains("refused") })")
        let port = try #require(boundPort(in: log, prefix: "dashboard: ", process: p))
        let health = httpGet("http://127.0.0.1:\(port)/health").body
        #expect(health.contains("\"kafka\":\"waiting for the cluster\""), "\(health)")
    }

    @Test func aBrokerThatComesBackIsOneMoreLine() throws {
        let dir = tempDir()
        let log = dir.appendingPathComponent("consumer.log")
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        let p = try launch("marts-consumer", ["--bootstrap-servers", broker.bootstrapServers, "--state-dir", dir.appendingPathComponent("s").path,
                                              "--report-seconds", "0.3", "--no-alerts"], stderr: log)
        defer { if p.isRunning { p.terminate(); p.waitUntilExit() } }
        _ = Self.waitForLines(log, containing: " consuming", count: 1, process: p)
        try broker.setBrokerDown(1)
        let down = Self.waitForLines(log, containing: "waiting for the cluster", count: 2, process: p)
        #expect(down.filter { $0.contains("Kafka cluster unreachable") }.count == 1, "\(down.suffix(20))")
        try broker.setBrokerUp(1)
        let up = Self.waitForLines(log, containing: "Kafka cluster reachable again", count: 1, process: p)
        #expect(up.filter { $0.contains("Kafka cluster reachable again") }.count == 1, "\(up.suffix(20))")
        let after = Self.waitForLines(log, containing: " consuming", count: up.filter { $0.contains(" consuming") }.count + 1, process: p)
        #expect(after.last { $0.contains("consuming") || $0.contains("waiting for the cluster") }?.contains(" consuming") == true)
    }
}
