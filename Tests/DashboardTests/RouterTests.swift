import Dashboard
import Config
import Charts
import Foundation
import Hummingbird
import HummingbirdTesting
import Marts
import Testing
import TestSupport
import Checkpoints
import Consumer
import Telemetry
import DashboardHTTP

/// The HTTP routes, served in process without a socket (HummingbirdTesting's router client).
@Suite struct RouterTests {
    static let state: URL = try! stateDirectory(try! world(customers: 300, months: 8))

    func app(token: String? = nil) -> some ApplicationProtocol {
        let source = StateDirectorySource(directory: Self.state)
        source.refresh(logger: quiet)
        return Application(router: DashboardServer(source: source, token: token).router())
    }

    /// A query the API cannot answer is a 400 naming the parameter and the expected form, never an empty answer
    /// or a silent default.
    @Test func badQueryParametersAreNamedNotIgnored() async throws {
        try await app().test(.router) { client in
            let cases = [
                ("/api/marts/mart_revenue_monthly?month=2025-13", "month: expected YYYY-MM, got '2025-13'"),
                ("/api/marts/mart_revenue_monthly?month=abc", "month: expected YYYY-MM, got 'abc'"),
                ("/api/marts/mart_revenue_monthly?plan=gold", "plan: expected one of free, standard, premium, enterprise, all, got 'gold'"),
                ("/api/at-risk?limit=abc", "limit: expected 1 to 10000, got 'abc'"),
                ("/api/at-risk?limit=0", "limit: expected 1 to 10000, got '0'"),
                // A misspelt filter or an option this path does not have used to answer every row.
                ("/api/marts/mart_revenue_monthly?plans=all", "unknown parameter 'plans': expected month, plan, limit, offset"),
                ("/api/marts/mart_customer_360?format=csv", "unknown parameter 'format': expected month, plan, limit, offset"),
                ("/api/at-risk?limt=5", "unknown parameter 'limt': expected limit"),
                ("/api/marts/mart_customer_360?limit=0", "limit: expected 1 to 100000, got '0'"),
                ("/api/marts/mart_customer_360?limit=100001", "limit: expected 1 to 100000, got '100001'"),
                ("/api/marts/mart_customer_360?offset=-1", "offset: expected 0 or more, got '-1'"),
                ("/api/marts/mart_customer_360?limit=5&offset=x", "offset: expected 0 or more, got 'x'"),
            ]
            for (uri, message) in cases {
                try await client.execute(uri: uri, method: .get) { r in
                    #expect(r.status == .badRequest, "\(uri)")
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                    #expect(body["error"] as? String == message, "\(uri)")
                }
            }
            // Good filters still answer, and filter.
            try await client.execute(uri: "/api/marts/mart_revenue_monthly?plan=all", method: .get) { r in
                #expect(r.status == .ok)
                let rows = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]])
                #expect(!rows.isEmpty && rows.allSatisfy { $0["plan"] as? String == "all" })
            }
            // Paging: the pages of a mart, in order, are the mart; each answer says how many rows match.
            var all: [[String: Any]] = []
            try await client.execute(uri: "/api/marts/mart_customer_360", method: .get) { r in
                all = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]])
                #expect(r.headers[DashboardServer.totalCount] == String(all.count))
            }
            #expect(all.count > 100)
            var paged: [String] = []
            var offset = 0
            while true {
                let page = try await client.execute(uri: "/api/marts/mart_customer_360?limit=64&offset=\(offset)&token=ignored", method: .get) { r in
                    #expect(r.status == .ok)
                    #expect(r.headers[DashboardServer.totalCount] == String(all.count))
                    return try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]])
                }
                #expect(page.count <= 64)
                if page.isEmpty { break }
                paged += page.map { $0["customer_id"] as! String }
                offset += page.count
            }
            #expect(paged == all.map { $0["customer_id"] as! String })
            try await client.execute(uri: "/api/marts/mart_revenue_monthly?plan=enterprise&limit=2&offset=1", method: .get) { r in
                let rows = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [[String: Any]])
                #expect(rows.count == 2 && rows.allSatisfy { $0["plan"] as? String == "enterprise" })
                let total = try #require(r.headers[DashboardServer.totalCount].flatMap { Int($0) })
                #expect(total > 3 && total < all.count)
            }
            try await client.execute(uri: "/api/at-risk?limit=2", method: .get) { r in
                #expect(r.status == .ok)
                let rows = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [Any])
                #expect(rows.count <= 2)
            }
        }
    }

    @Test func healthAndMetricsSayHowFarBehindASinkIs() async throws {
        let lagging = SinkStatus(name: "postgres", connected: false, checkpointsBehind: 3, secondsBehind: 12.5, commits: 7)
        var metrics = ConsumerMetrics()
        metrics.sinks = [lagging]
        let registry = MetricsRegistry()
        let telemetry = ConsumerTelemetry(registry: registry)
        telemetry.publish(ConsumerMetrics())
        #expect(!registry.exposition().contains("undercurrent_sink_"), "no sink, no sink metrics")
        telemetry.publish(metrics)
        let text = registry.exposition()
        #expect(text.contains("undercurrent_sink_up{sink=\"postgres\"} 0.0\n"))
        #expect(text.contains("undercurrent_sink_lag_checkpoints{sink=\"postgres\"} 3.0\n"))
        #expect(text.contains("undercurrent_sink_lag_seconds{sink=\"postgres\"} 12.5\n"))
        #expect(text.contains("undercurrent_sink_commits_total{sink=\"postgres\"} 7\n"))
        // The failure-spike detector's reach: attempts an hour per scope, and the time to catch an outage once known.
        metrics.detectionReach = [DetectionReach(scope: "overall", attemptsPerHour: 120, baselineRate: 0.08, outageRate: 0.5,
                                                 minimumAttemptsPerHour: 0.8, hoursToDetect: 0.25)]
        telemetry.publish(metrics)
        let known = registry.exposition()
        #expect(known.contains("undercurrent_alert_scope_attempts_per_hour{scope=\"overall\"} 120.0\n"))
        #expect(known.contains("undercurrent_alert_detection_seconds{scope=\"overall\",outage_rate=\"0.5\"} 900.0\n"))
        metrics.detectionReach[0].hoursToDetect = nil
        telemetry.publish(metrics)
        #expect(!registry.exposition().contains("undercurrent_alert_detection_seconds{"), "no reach known, no series")
        let source = StateDirectorySource(directory: Self.state, metrics: registry, liveSinks: {
            [DashboardAPI.SinkHealth(name: "postgres", connected: false, checkpointsBehind: 3, secondsBehind: 12.5)]
        })
        source.refresh(logger: quiet)
        try await Application(router: DashboardServer(source: source).router()).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { r in
                let h = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                let sinks = try #require(h["sinks"] as? [[String: Any]])
                #expect(sinks.first?["name"] as? String == "postgres")
                #expect(sinks.first?["connected"] as? Bool == false)
                #expect(sinks.first?["checkpoints_behind"] as? Int == 3)
                #expect(sinks.first?["seconds_behind"] as? Double == 12.5)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(String(buffer: r.body).contains("undercurrent_sink_lag_checkpoints"))
            }
        }
    }

    @Test func theAlertsPageAndAPISayWhatTheDetectorCanCatchWhenAConsumerServesThem() async throws {
        let reach = [
            DetectionReach(scope: "overall", attemptsPerHour: 30, baselineRate: 0.08, outageRate: 0.5, minimumAttemptsPerHour: 0.8, hoursToDetect: 0.4),
            DetectionReach(scope: "plan:premium", attemptsPerHour: 4, baselineRate: 0.1, outageRate: 0.5, minimumAttemptsPerHour: 0.8, hoursToDetect: 2.5),
            DetectionReach(scope: "plan:enterprise", attemptsPerHour: 0.5, baselineRate: nil, outageRate: 0.5, minimumAttemptsPerHour: 0.8, hoursToDetect: nil),
        ]
        let live = StateDirectorySource(directory: Self.state, liveAlerting: { AlertCoverage(reach: reach, lateAttempts: 3) })
        live.refresh(logger: quiet)
        try await Application(router: DashboardServer(source: live).router()).test(.router) { client in
            try await client.execute(uri: "/alerts", method: .get) { r in
                let page = String(buffer: r.body)
                #expect(page.contains("What the detector can catch now"))
                #expect(page.contains("caught in about 24 min (30 first attempts an hour)"))
                #expect(page.contains("about 2.5 h") && page.contains("learning the baseline"))
                // What the alerts have not seen: attempts too late for their minute.
                #expect(page.contains("3 payment attempts came after their minute was evaluated"))
            }
            try await client.execute(uri: "/api/alert-reach", method: .get) { r in
                #expect(r.status == .ok)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                #expect(body["late_attempts"] as? Int == 3)
                #expect((body["summary"] as? String)?.hasPrefix("an outage failing 50% of all first attempts") == true)
                let scopes = try #require(body["scopes"] as? [[String: Any]])
                #expect(scopes.count == 3)
                #expect(scopes[0]["seconds_to_detect"] as? Double == 1440 && scopes[0]["attempts_per_hour"] as? Double == 30)
                #expect(scopes[2]["seconds_to_detect"] is NSNull && scopes[2]["baseline_rate"] is NSNull)
            }
        }
        // A dashboard beside the consumer reads it from the alert engine's checkpoint, under the rules written there.
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let engine = try #require(try AlertStateStore(stateDirectory: Self.state).load(rules: rules.fingerprint), "the consumer checkpointed its engine")
        let expected = AlertEngine(rules: rules, state: engine.state).detectionReach(outageRate: 0.5)
        #expect(!expected.isEmpty)
        try await app().test(.router) { client in
            try await client.execute(uri: "/alerts", method: .get) { r in
                let page = String(buffer: r.body)
                #expect(page.contains(Charts.escape("At this volume " + DetectionReach.sentence(expected) + ".")))
                #expect(engine.state.lateAttempts > 0 || !page.contains("came after their minute was evaluated"))
            }
            try await client.execute(uri: "/api/alert-reach", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                #expect(body["summary"] as? String == DetectionReach.sentence(expected))
                #expect(body["late_attempts"] as? Int == engine.state.lateAttempts)
                #expect((body["scopes"] as? [Any])?.count == expected.count)
            }
        }
        // Without a detector's checkpoint (a consumer run without alerts), it says it does not know.
        let bare = FileManager.default.temporaryDirectory.appendingPathComponent("uc-bare-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.state, to: bare)
        defer { try? FileManager.default.removeItem(at: bare) }
        try FileManager.default.removeItem(at: bare.appendingPathComponent(AlertStateStore.fileName))
        let source = StateDirectorySource(directory: bare)
        source.refresh(logger: quiet)
        try await Application(router: DashboardServer(source: source).router()).test(.router) { client in
            try await client.execute(uri: "/alerts", method: .get) { r in #expect(String(buffer: r.body).contains("holds no failure-spike detector")) }
            try await client.execute(uri: "/api/alert-reach", method: .get) { r in #expect(r.status == .notFound) }
        }
    }

    @Test func apiAndPagesAnswerFromTheState() async throws {
        let (snapshot, _) = try StateDirectory(Self.state.path).load()
        try await app().test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { r in
                #expect(r.status == .ok && String(buffer: r.body).contains("\"status\":\"ok\""))
            }
            try await client.execute(uri: "/api/kpis", method: .get) { r in
                #expect(r.status == .ok)
                let k = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                #expect(k["mrr_at_risk_cents"] as? Int64 == DashboardData(snapshot: snapshot).kpis.mrrAtRiskCents)
                #expect(k.keys.contains("latest_month") && k.keys.contains("as_of"))
                let rate = (k["all_time"] as? [String: Any])?["payment_failure_rate"] as? Double
                #expect(rate.map { (0...1).contains($0) } == true)
            }
            try await client.execute(uri: "/api/narrative", method: .get) { r in
                let n = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                #expect(n.keys.contains("insufficient") && n["findings"] is [Any] && n["recommendations"] is [Any])
            }
            let id = snapshot.customers.keys.sorted().first!
            try await client.execute(uri: "/api/customers/\(id)", method: .get) { r in
                #expect(r.status == .ok && String(buffer: r.body).contains("\"timeline\":[{"))
            }
            try await client.execute(uri: "/api/customers/cus_nobody", method: .get) { r in #expect(r.status == .notFound) }
            try await client.execute(uri: "/api/marts/nope", method: .get) { r in #expect(r.status == .notFound) }
            // The index of the marts (it was a 404), each path answering.
            var paths: [String] = []
            try await client.execute(uri: "/api/marts", method: .get) { r in
                #expect(r.status == .ok)
                let index = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any])
                let marts = try #require(index["marts"] as? [[String: String]])
                #expect(marts.compactMap { $0["name"] } == MartSnapshot.martNames)
                paths = marts.compactMap { $0["path"] }
            }
            #expect(paths.count == MartSnapshot.martNames.count)
            for path in paths {
                try await client.execute(uri: path, method: .get) { r in #expect(r.status == .ok, "\(path)") }
            }
            try await client.execute(uri: "/risk", method: .get) { r in
                #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/html") == true)
            }
        }
    }

    @Test func aTokenGuardsEverythingButHealth() async throws {
        let token = "0123456789abcdef-token"
        try await app(token: token).test(.router) { client in
            try await client.execute(uri: "/api/kpis", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/api/kpis", method: .get, headers: [.authorization: "Bearer \(token)"]) { r in #expect(r.status == .ok) }
        }
    }
}
