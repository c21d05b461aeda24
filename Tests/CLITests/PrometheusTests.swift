import Foundation
import Kafka
import Testing
import TestSupport
import UndercurrentCLI

/// Prometheus' own tools against the repository's rules and dashboard, and a real Prometheus server scraping a
/// running producer and consumer (Debian's `prometheus` package; scripts/test.sh installs it).
@Suite(.serialized) struct PrometheusTests {
    static let deploy = repoRoot.appendingPathComponent("deploy")

    @Test func rulesPassPromtoolChecksAndTheirUnitTests() throws {
        let rules = Self.deploy.appendingPathComponent("prometheus/rules.yml").path
        let check = try promtool(["check", "rules", rules])
        #expect(check.status == 0, "\(check.output)")
        let tests = try promtool(["test", "rules", Self.deploy.appendingPathComponent("prometheus/rules_test.yml").path])
        #expect(tests.status == 0 && tests.output.contains("SUCCESS"), "\(tests.output)")
        let config = try promtool(["check", "config", Self.deploy.appendingPathComponent("prometheus/prometheus.yml").path])
        #expect(config.status == 0, "\(config.output)")
    }

    /// A producer and a consumer (with its dashboard and a PostgreSQL sink) serve /metrics; Prometheus scrapes both,
    /// answers for lag and deliveries, and every query of the Grafana dashboard and every rule runs on it and names
    /// only metrics the processes export.
    @Test func aRealPrometheusScrapesTheProcessesAndEveryPanelQueryNamesExportedMetrics() throws {
        let dir = tempDir()
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        let postgres = try PostgresServer()
        defer { postgres.stop() }
        setenv("PGPASSWORD", PostgresServer.password, 1)
        let producerLog = dir.appendingPathComponent("producer.log"), consumerLog = dir.appendingPathComponent("consumer.log")
        // Paced, so that it is still producing while Prometheus scrapes it.
        let producer = try launch("payments-producer", ["--bootstrap-servers", broker.bootstrapServers, "--customers", "12000", "--rate", "400",
                                                        "--config-dir", repoConfig.path, "--metrics-listen", "127.0.0.1:0"], stderr: producerLog)
        let consumer = try launch("marts-consumer", ["--bootstrap-servers", broker.bootstrapServers, "--state-dir", dir.appendingPathComponent("state").path,
                                                     "--config-dir", repoConfig.path, "--metrics-listen", "127.0.0.1:0", "--serve", "127.0.0.1:0",
                                                     "--postgres", postgres.uri(withPassword: false), "--report-seconds", "0.5", "--checkpoint-ms", "500"],
                                  stderr: consumerLog)
        defer {
            for p in [producer, consumer] where p.isRunning { p.terminate(); p.waitUntilExit() }
        }
        let producerPort = try #require(boundPort(in: producerLog, prefix: "metrics: ", process: producer))
        let consumerPort = try #require(boundPort(in: consumerLog, prefix: "metrics: ", process: consumer))
        let dashboardPort = try #require(boundPort(in: consumerLog, prefix: "dashboard: ", process: consumer))
        #expect(httpGet("http://127.0.0.1:\(dashboardPort)/api/kpis").status == 200)  // one request for the request metrics

        // Every exposition passes promtool.
        try expectPromtoolAccepts(httpGet("http://127.0.0.1:\(producerPort)/metrics").body)
        try expectPromtoolAccepts(httpGet("http://127.0.0.1:\(consumerPort)/metrics").body)

        let promPort = PostgresServer.freePort()
        let config = dir.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files: ["\(Self.deploy.appendingPathComponent("prometheus/rules.yml").path)"]
        scrape_configs:
          - job_name: undercurrent-consumer
            static_configs: [{targets: ["127.0.0.1:\(consumerPort)"]}]
          - job_name: undercurrent-producers
            static_configs: [{targets: ["127.0.0.1:\(producerPort)"]}]
        """.write(to: config, atomically: true, encoding: .utf8)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(config.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("tsdb").path)",
                                "--web.listen-address=127.0.0.1:\(promPort)"]
        let promLog = dir.appendingPathComponent("prometheus.log")
        FileManager.default.createFile(atPath: promLog.path, contents: nil)
        prometheus.standardError = try FileHandle(forWritingTo: promLog)
        prometheus.standardOutput = FileHandle.nullDevice
        try prometheus.run()
        defer { prometheus.terminate(); prometheus.waitUntilExit() }
        let api = "http://127.0.0.1:\(promPort)/api/v1"

        /// The values of an instant query; nil when it failed.
        func query(_ promql: String) -> [Double]? {
            let q = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let (status, body) = httpGet("\(api)/query?query=\(q)")
            guard status == 200, let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  json["status"] as? String == "success", let data = json["data"] as? [String: Any] else { return nil }
            if let result = data["result"] as? [[String: Any]] {
                return result.compactMap { ($0["value"] as? [Any])?.last as? String }.compactMap(Double.init)
            }
            return ((data["result"] as? [Any])?.last as? String).flatMap(Double.init).map { [$0] } ?? []
        }
        /// Waits (on what Prometheus answers, not on time) until `promql` returns a value that `good` accepts.
        func eventually(_ promql: String, _ good: ([Double]) -> Bool) -> [Double]? {
            let end = ContinuousClock.now + .seconds(180)
            while ContinuousClock.now < end {
                if let v = query(promql), good(v) { return v }
                if !prometheus.isRunning || !producer.isRunning || !consumer.isRunning { return nil }
                Thread.sleep(forTimeInterval: 0.2)
            }
            return nil
        }
        let delivered = try #require(eventually("undercurrent_producer_messages_delivered_total{job=\"undercurrent-producers\"}") { $0.first ?? 0 > 0 },
                                     "Prometheus never had the producer's deliveries; see \(promLog.path), \(producerLog.path)")
        let accepted = try #require(eventually("sum(undercurrent_input_messages_total{job=\"undercurrent-consumer\",outcome=\"accepted\"})") { $0.first ?? 0 > 0 })
        let lag = try #require(eventually("undercurrent_consumer_lag_messages{job=\"undercurrent-consumer\",topic=\"payments\"}") { $0.count == 3 },
                               "one lag series per payments partition")
        #expect(lag.allSatisfy { $0 >= 0 })
        #expect(try #require(query("count(undercurrent_consumer_lag_seconds{topic=\"payments\"})")) == [3])
        #expect(delivered[0] > 0 && accepted[0] > 0)
        #expect(try #require(eventually("undercurrent_sink_up{sink=\"postgres\"}") { $0 == [1] }) == [1])
        _ = try #require(eventually("undercurrent_http_requests_total{route=\"/api/kpis\",status=\"200\"}") { $0 == [1] })
        // Enough payments for the failure-spike detector to learn a baseline: it says how soon it would catch an outage.
        let reach = try #require(eventually("undercurrent_alert_detection_seconds{scope=\"overall\",outage_rate=\"0.5\"}") { $0.count == 1 })
        #expect(reach[0] > 0)
        // Every scope the failure-spike detector watches, 0 while no spike fires: what UndercurrentFailureSpike
        // pages on (the rule's own firing is unit-tested in rules_test.yml).
        let spikes = try #require(eventually("undercurrent_failure_spike_firing{job=\"undercurrent-consumer\",scope=\"overall\"}") { $0.count == 1 })
        #expect(spikes == [0])
        #expect(try #require(query("count(undercurrent_failure_spike_firing{scope=~\"plan:.*\"})")).first ?? 0 >= 3)
        #expect(try #require(query("sum(undercurrent_history_missed_messages)")) == [0])

        // Every metric the processes export, as Prometheus saw them.
        let (_, namesBody) = httpGet("\(api)/label/__name__/values")
        let names = Set(((try JSONSerialization.jsonObject(with: Data(namesBody.utf8)) as? [String: Any])?["data"] as? [String]) ?? [])
        #expect(names.contains("undercurrent_producer_delivery_latency_seconds_bucket"))
        #expect(names.contains("undercurrent_checkpoint_duration_seconds_bucket"))

        // The Grafana dashboard: every query runs on this Prometheus and names only exported metrics.
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.deploy.appendingPathComponent("grafana/dashboards/undercurrent.json"))) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        var expressions: [String] = []
        for panel in panels { for target in panel["targets"] as? [[String: Any]] ?? [] { if let e = target["expr"] as? String { expressions.append(e) } } }
        #expect(expressions.count >= 15)
        // And every rule's expression.
        let rulesText = try String(contentsOf: Self.deploy.appendingPathComponent("prometheus/rules.yml"), encoding: .utf8)
        let ruleExpressions = rulesText.split(separator: "\n").filter { $0.contains("expr:") }.count
        #expect(ruleExpressions == 22)
        let panelTitles = Set(panels.compactMap { $0["title"] as? String })
        for wanted in ["Consumer lag per partition (messages)", "Delivery latency", "End-to-end latency (estimate)", "Checkpoint duration",
                       "Dead letters", "Failure-spike alerts", "Failure spikes firing", "What the marts and alerts have not seen", "Failure-spike reach", "Sink lag", "Input messages by outcome",
                       "Kafka cluster and outputs"] {
            #expect(panelTitles.contains(wanted), "panel \(wanted)")
        }
        for expr in expressions {
            let runnable = expr.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$__range", with: "5m")
            #expect(query(runnable) != nil, "Prometheus rejects the panel query \(expr)")
            for name in metricNames(in: expr) {
                #expect(names.contains(name), "the panel query \(expr) names \(name), which no process exports")
            }
        }
        for name in metricNames(in: rulesText) {
            #expect(names.contains(name), "rules.yml names \(name), which no process exports")
        }
    }
}

/// The `undercurrent_…` metric names in a PromQL text (a histogram's series named as Prometheus stores them).
func metricNames(in text: String) -> Set<String> {
    var out = Set<String>()
    var rest = Substring(text)
    while let r = rest.range(of: "undercurrent_") {
        let before = rest[..<r.lowerBound].last
        let name = rest[r.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        rest = rest[r.lowerBound...].dropFirst(name.count)
        if let before, before.isLetter || before.isNumber || before == "_" || before == ":" { continue }  // inside a recording rule's name
        out.insert(String(name))
    }
    return out
}
