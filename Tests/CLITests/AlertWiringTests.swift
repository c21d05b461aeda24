import Archives
import Config
import Consumer
import Events
import Foundation
import Kafka
import Marts
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// The consumer raises the alerts the engine computes for the same events, whatever their partitioning.
@Suite struct AlertWiringTests {
    @Test func consumerRaisesTheEngineAlertsForAnArchiveWithASpike() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let events = spikeEvents()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("spike.ndjson").path
        let writer = try ArchiveWriter(path: archive)
        for e in events { try writer.write(ArchiveRecord(event: e, value: EventEncoder.encode(e))) }
        try writer.close()

        var engine = AlertEngine(rules: rules)
        var expected: [Alert] = []
        for e in events { expected += engine.observe(e, source: Int(Murmur2.partition(for: Array(e.customerID.utf8), partitionCount: 4))) }

        var options = MartsConsumer.Options(stateDirectory: dir.appendingPathComponent("state"))
        options.alertRules = rules
        // A dead webhook (nothing listens on port 1): alerts still flow, its failures are counted.
        let hook = AlertWebhook(url: URL(string: "http://127.0.0.1:1/alerts")!, timeout: .milliseconds(500), attempts: 2)
        options.alertWebhook = hook
        let consumer = MartsConsumer(options: options, logger: quiet)
        try consumer.run(archive: archive, partitionCount: 4, stop: StopSignal(handleSignals: false))
        #expect(consumer.alerts == expected)
        #expect(consumer.alerts.contains { $0.state == .firing && $0.scope == "reason:gateway_timeout" })
        #expect(consumer.summary.alertsFiring == consumer.alerts.filter { $0.state == .firing }.count)
        hook.close(wait: .seconds(20))
        let c = hook.counters
        #expect(c.delivered == 0 && c.failed + c.dropped == consumer.alerts.count)
        #expect(c.tries == 2 * c.failed)
    }

    @Test func aDeadWebhookNeverBlocksTheCaller() {
        let hook = AlertWebhook(url: URL(string: "http://127.0.0.1:1/alerts")!, timeout: .milliseconds(500), attempts: 3, capacity: 20)
        let alert = Alert(rule: "r", scope: "overall", state: .firing, at: Timestamp(ms: 0), firingSince: Timestamp(ms: 0),
                          observedRate: 0.5, baselineRate: 0.05, attempts: 40, failures: 20, windowMinutes: 10)
        for _ in 0..<500 { hook.post(alert) }
        // 500 posts into a queue of 20 that drains at most one alert per retry cycle: had `post` waited for the
        // webhook, nothing would have been dropped.
        #expect(hook.counters.dropped >= 500 - 20 - 3)
        hook.close(wait: .seconds(30))
        let c = hook.counters
        #expect(c.delivered == 0 && c.failed + c.dropped == 500)
    }
}
