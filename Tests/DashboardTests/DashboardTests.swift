import Checkpoints
import Archives
import Config
import Consumer
import Dashboard
import Events
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Marts
import Simulation
import Synchronization
import Testing
import TestSupport
import DashboardHTTP

let root = repoRoot
let quietLogger = quiet

func world(customers: Int = 1500, months: Int = 18, scenario: String = "payment-incident") throws -> SimulationParameters {
    let config = try ConfigLoader.load(scenario: scenario, configDir: root.appendingPathComponent("config"))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    return SimulationParameters(config: config, seed: 11, customers: customers, start: start, end: start.addingMonths(months))
}

func snapshot(_ p: SimulationParameters, shuffled: Bool = false) throws -> MartSnapshot {
    var events = Array(try World(p))
    if shuffled { events.shuffle() }
    var state = MartState()
    for e in events { _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
    return MartSnapshot([state])
}

/// A state directory written by the consumer from an archive of `p`.
func stateDirectory(_ p: SimulationParameters) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uc-dash-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let archive = dir.appendingPathComponent("a.ndjson").path
    var run = SimulateRun(world: try World(p))
    let writer = try ArchiveWriter(path: archive)
    _ = try run.write(to: writer)
    try writer.close()
    var options = MartsConsumer.Options(stateDirectory: dir.appendingPathComponent("state"))
    options.alertRules = try AlertConfig.load(file: nil, configDir: root.appendingPathComponent("config").path)
    let consumer = MartsConsumer(options: options, logger: quietLogger)
    try consumer.run(archive: archive, partitionCount: 3, stop: StopSignal(handleSignals: false))
    return dir.appendingPathComponent("state")
}

@Suite struct NarrativeTests {
    @Test func everyNumberOfTheNarrativeIsTheMartsNumber() throws {
        let d = DashboardData(snapshot: try snapshot(try world()))
        let n = Narrative(d)
        #expect(n.insufficient == nil)
        let months = d.months
        let latest = months[months.count - 2]
        let recent = Set(months.dropLast().suffix(3))

        let revenue = try #require(n.findings.first { $0.id == "revenue" })
        let row = try #require(d.table("mart_revenue_monthly").records.first { $0["month"]?.text == latest && $0["plan"]?.text == "all" })
        #expect(revenue.numbers["revenue_cents"] == row["revenue_cents"]?.double)
        #expect(revenue.numbers["recovered_revenue_cents"] == row["recovered_revenue_cents"]?.double)
        #expect(revenue.numbers["revenue_growth_rate"] == row["revenue_growth_rate"]?.double)
        #expect(revenue.text.contains(Format.money(row["revenue_cents"]!.int!)))

        let recoverable = try #require(n.findings.first { $0.id == "recoverable" })
        let rec = d.table("mart_recovery_opportunity").records.filter { recent.contains($0["month"]!.text!) }
        #expect(recoverable.numbers["lost_cents"] == rec.reduce(0) { $0 + $1["lost_cents"]!.double! })
        #expect(recoverable.numbers["recovered_cents"] == rec.reduce(0) { $0 + $1["recovered_cents"]!.double! })
        #expect(recoverable.text.contains(Format.money(Int64(recoverable.numbers["lost_cents"]!))))

        let risk = try #require(n.findings.first { $0.id == "at_risk" })
        let c360 = d.table("mart_customer_360").records
        let atRisk = c360.filter { ["high", "critical"].contains($0["risk_segment"]!.text!) }
        #expect(risk.numbers["customers"] == Double(atRisk.count))
        #expect(risk.numbers["mrr_at_risk_cents"] == atRisk.reduce(0) { $0 + $1["mrr_cents"]!.double! })

        let failure = try #require(n.findings.first { $0.id == "failure_rise" })
        let rel = try #require(d.table("mart_payment_reliability").records.first { $0["month"]?.text == latest })
        #expect(failure.numbers["latest_rate"] == rel["failure_rate"]?.double)
    }

    @Test func theNarrativeIsDeterministicWhateverTheArrivalOrder() throws {
        let p = try world(customers: 800, months: 12)
        let a = Narrative(DashboardData(snapshot: try snapshot(p)))
        let b = Narrative(DashboardData(snapshot: try snapshot(p, shuffled: true)))
        #expect(a.findings == b.findings)
        #expect(a.recommendations == b.recommendations)
        #expect(a.markdown == b.markdown)
    }

    @Test func tooLittleDataIsSaidNotGuessed() throws {
        let d = DashboardData(snapshot: try snapshot(try world(customers: 20, months: 2)))
        let n = Narrative(d)
        #expect(n.insufficient?.hasPrefix("Too little data to conclude") == true)
        // Nothing concluded from the marts; only what the alerts saw (none), which needs no months of data.
        #expect(n.findings.map(\.id) == ["outages"] && n.recommendations.isEmpty)
        #expect(PageRenderer(data: d).document(.action).contains("Too little data to conclude"))
        #expect(Narrative(DashboardData(snapshot: MartSnapshot())).insufficient != nil)
    }

    /// The narrative an executive reads says what the figures were not built on, even when they are too few to
    /// conclude anything; so does the Markdown report, as the HTML pages' banner does.
    @Test func aPartialHistoryIsSaidFirstInTheNarrativeAndTheMarkdownReport() throws {
        let gap = "billing: its partitions 0-2 began at offsets past 0 (the topic's retention dropped the first messages)."
        for p in [try world(customers: 800, months: 12), try world(customers: 20, months: 2)] {
            let s = try snapshot(p)
            let whole = Narrative(DashboardData(snapshot: s))
            #expect(!whole.findings.contains { $0.id == "partial_history" })
            let d = DashboardData(snapshot: s, historyGaps: [gap])
            let n = Narrative(d)
            #expect(n.findings.first?.id == "partial_history")
            #expect(n.findings.first?.text.contains(gap) == true)
            #expect(n.findings.first?.numbers["inputs_with_gaps"] == 1)
            // The other findings are those of the whole history: the gap adds a caveat, it changes no number.
            #expect(Array(n.findings.dropFirst()) == whole.findings)
            #expect(n.insufficient == whole.insufficient)
            let md = MarkdownReport.render(d)
            #expect(md.contains("> **Partial history") && md.contains("> - \(gap)"))
            #expect(md.contains("**Partial history.** These figures were built without"))
            #expect(!MarkdownReport.render(DashboardData(snapshot: s)).contains("Partial history"))
            #expect(PageRenderer(data: d).document(.action).contains("These figures were built without"))
        }
    }

    /// The outages finding counts each raised spike once (its firing and its resolution are two alerts), leaves
    /// out the spikes before the recent months, tells a spike still firing, and says what the detector could
    /// catch at this volume, or that it is not known.
    @Test func theNarrativeTellsTheRecentSpikesAndWhatTheDetectorCouldCatch() throws {
        let s = try snapshot(try world(customers: 800, months: 12))
        let months = DashboardData(snapshot: s).months
        let first = try #require(Month(months[months.count - 1 - Narrative.recentMonths]))
        func at(_ m: Month, day: Int, hour: Int) -> Timestamp { Timestamp(year: m.year, month: m.month, day: day, hour: hour) }
        func later(_ t: Timestamp, hours: Int64) -> Timestamp { Timestamp(ms: t.ms + hours * 3_600_000) }
        func alert(_ scope: String, _ state: Alert.State, since: Timestamp, at t: Timestamp) -> Alert {
            Alert(rule: "failure-spike", scope: scope, state: state, at: t, firingSince: since, observedRate: 0.48, baselineRate: 0.04,
                  attempts: 40, failures: 19, windowMinutes: 60, shiftStart: Timestamp(ms: since.ms - 40 * 60_000))
        }
        func minute(_ t: Timestamp) -> String { String(t.description.prefix(16)).replacingOccurrences(of: "T", with: " ") + " UTC" }
        let old = at(first.previous, day: 3, hour: 0), a = at(first, day: 5, hour: 2), b = at(first.next, day: 9, hour: 6)
        let older = at(first.previous.previous, day: 1, hour: 0)
        let alerts = [
            alert("plan:premium", .firing, since: old, at: old), alert("plan:premium", .resolved, since: old, at: later(old, hours: 3)),
            alert("reason:gateway_timeout", .firing, since: a, at: a), alert("reason:gateway_timeout", .resolved, since: a, at: later(a, hours: 6)),
            alert("overall", .firing, since: b, at: b),
        ]
        let d = DashboardData(snapshot: s, alerts: alerts)
        let unknown = try #require(Narrative(d).findings.first { $0.id == "outages" })
        #expect(unknown.numbers["spikes"] == 2 && unknown.numbers["firing"] == 1)
        #expect(unknown.text.hasPrefix("2 failure spikes were raised since \(first):"))
        // A spike raised before the window that still fires is told too.
        let long = try #require(Narrative(DashboardData(snapshot: s, alerts: alerts + [alert("plan:standard", .firing, since: older, at: older)]))
            .findings.first { $0.id == "outages" })
        #expect(long.numbers["spikes"] == 3 && long.numbers["firing"] == 2)
        #expect(long.text.hasPrefix("3 failure spikes were raised since \(first) or still fire from before:"))
        #expect(long.text.contains("plan:standard, raised \(minute(older))") && long.text.contains("2 of them are still firing."))
        #expect(!long.text.contains("plan:premium"))
        // The latest first, each with its time, the estimated start of the shift, how long it fired and its rates.
        #expect(unknown.text.contains("raised since \(first): overall, raised \(minute(b)) (the shift began about "
                                      + "\(minute(Timestamp(ms: b.ms - 40 * 60_000)))), still firing after"), "\(unknown.text)")
        #expect(unknown.text.contains("1 of them is still firing."))
        #expect(unknown.text.contains("; reason:gateway_timeout, raised \(minute(a)) (the shift began about \(minute(Timestamp(ms: a.ms - 40 * 60_000)))), "
                                      + "resolved 6.0 h later: failure rate 48.0% against a baseline of 4.0%."), "\(unknown.text)")
        #expect(!unknown.text.contains("plan:premium"))
        #expect(unknown.text.contains("is not known: this state holds no failure-spike detector"))

        let reach = [DetectionReach(scope: "overall", attemptsPerHour: 1.2, baselineRate: 0.05, outageRate: 0.5, minimumAttemptsPerHour: 0.1,
                                    hoursToDetect: 13.25)]
        let none = try #require(Narrative(DashboardData(snapshot: s), reach: reach).findings.first { $0.id == "outages" })
        #expect(none.text == "No failure spike was raised since \(first). At this volume \(DetectionReach.sentence(reach)).")
        #expect(none.text.contains("about 13.2 h"))
        #expect(none.numbers["spikes"] == 0 && none.numbers["overall_hours_to_detect"] == 13.25)
        let md = MarkdownReport.render(DashboardData(snapshot: s), alerting: AlertCoverage(reach: reach))
        #expect(md.contains("None raised.") && md.contains("### What the detector can catch now\n\nAt this volume an outage failing 50%"))
        let api = try JSONSerialization.jsonObject(with: Data(DashboardAPI.narrative(d, reach: reach).utf8)) as? [String: Any]
        let findings = try #require(api?["findings"] as? [[String: Any]])
        #expect(findings.contains { $0["id"] as? String == "outages" && ($0["text"] as? String)?.contains("At this volume") == true })

        // An alert resolved with a wider scope says which, on the alerts page and in the report, in place of its
        // own evidence; one resolved by itself shows its evidence.
        var with = alert("plan:premium/reason:gateway_timeout", .resolved, since: a, at: later(a, hours: 6))
        with.resolvedWith = "reason:gateway_timeout"
        with.evidence = 1.2
        var own = alerts[3]
        own.evidence = 6.9 * 2
        let both = DashboardData(snapshot: s, alerts: [alerts[2], own, with])
        let page = PageRenderer(data: both).document(.alerts)
        #expect(page.contains("with [reason:gateway_timeout]") && page.contains("10^6.0") && !page.contains("10^0.5"), "\(page)")
        let report = MarkdownReport.render(both)
        #expect(report.contains("[plan:premium/reason:gateway_timeout] at ") && report.contains(", resolved with [reason:gateway_timeout]"))
        #expect(report.contains(", evidence 10^6.0"))
    }
}

@Suite struct PageTests {
    @Test func everyPageRendersItsChartsAndTheKPIsAreTheMarts() throws {
        let d = DashboardData(snapshot: try snapshot(try world()))
        let r = PageRenderer(data: d)
        let expectedCharts: [Page: Int] = [.executive: 5, .risk: 6, .action: 2, .product: 3, .retention: 0, .growth: 3, .alerts: 0]
        for page in Page.allCases {
            let html = r.document(page)
            #expect(html.hasPrefix("<!doctype html>"))
            #expect(html.components(separatedBy: "<svg").count - 1 == expectedCharts[page], "\(page)")
            #expect(html.contains("class=\"reading\"") || page == .alerts || page == .retention || page == .action)
        }
        let k = d.kpis
        let exec = r.document(.executive)
        #expect(exec.contains(Format.money(k.allTime.revenueCents)))
        #expect(exec.contains(Format.percent(k.latestMonth!.paymentFailureRate)))
        #expect(exec.contains(String(k.latestMonth!.payingCustomers)))
        let report = r.report()
        #expect(report.components(separatedBy: "<section id=").count - 1 == Page.allCases.count)
        #expect(!report.contains("<script>"))
        #expect(MarkdownReport.render(d).contains("## Executive narrative"))
    }

    @Test func hostileStringsComeOutEscaped() throws {
        var s = try snapshot(try world(customers: 300, months: 8))
        let hostile = "<script>alert('x')</script>\"&" + String(repeating: "A", count: 5000)
        let victim = s.customers.first { $0.value.currentMrr > 0 }!.key
        var renamed = CustomerTable()
        for (id, bytes) in s.customers.packedEntries { renamed.setPacked(id == victim ? hostile : id, bytes) }
        s.customers = renamed
        let alerts = [Alert(rule: "<img src=x onerror=alert(1)>", scope: "reason:\"><script>", state: .firing, at: Timestamp(ms: 1_700_000_000_000),
                            firingSince: Timestamp(ms: 1_700_000_000_000), observedRate: 0.5, baselineRate: 0.1, attempts: 10, failures: 5, windowMinutes: 10)]
        let d = DashboardData(snapshot: s, alerts: alerts)
        let r = PageRenderer(data: d, live: false)
        var all = Page.allCases.map { r.document($0) }.joined() + r.report() + (r.customerDocument(hostile) ?? "")
        all += MarkdownReport.render(d).replacingOccurrences(of: "<", with: "")  // markdown is text; no markup survives above
        #expect(!all.contains("<script>alert"))
        #expect(!all.contains("<img src=x"))
        #expect(all.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"))
        #expect(r.customerDocument(hostile) != nil)
        let api = try #require(DashboardAPI.customer(d, id: hostile))
        let parsed = try JSONSerialization.jsonObject(with: Data(api.utf8)) as? [String: Any]
        #expect((parsed?["customer"] as? [String: Any])?["customer_id"] as? String == hostile)
        let alertsJSON = try JSONSerialization.jsonObject(with: Data(DashboardAPI.alerts(d).utf8)) as? [[String: Any]]
        #expect(alertsJSON?.first?["rule"] as? String == alerts[0].rule)
    }
}

/// A small HTTP client for the tests. Async: the server's handlers need the cooperative pool that a
/// blocked test thread would hold.
func get(_ url: String, headers: [String: String] = [:], method: String = "GET") async -> (Int, String, [String: String]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 60
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    return await withCheckedContinuation { continuation in
        URLSession.shared.dataTask(with: request) { data, response, _ in
            let r = response as? HTTPURLResponse
            var fields: [String: String] = [:]
            for (k, v) in r?.allHeaderFields ?? [:] { fields["\(k)"] = "\(v)" }
            continuation.resume(returning: (r?.statusCode ?? 0, String(decoding: data ?? Data(), as: UTF8.self), fields))
        }.resume()
    }
}

/// Runs `undercurrent dashboard` over `dir` on a free port until the returned stop is called. A process of
/// its own: the server then never competes with the test runner's threads.
func serve(_ dir: URL, token: String? = nil) async throws -> (port: Int, stop: @Sendable () -> Void) {
    let binary = try TestSupport.binary("undercurrent")
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("uc-dashboard-\(UUID().uuidString).log")
    FileManager.default.createFile(atPath: log.path, contents: nil)
    let p = Process()
    p.executableURL = binary
    p.arguments = ["dashboard", "--state-dir", dir.path, "--listen", "127.0.0.1:0", "--log-level", "warning"] + (token.map { ["--token", $0] } ?? [])
    p.standardError = try FileHandle(forWritingTo: log)
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    // Waited for on a thread of its own, not in async code: tests that block the cooperative pool's threads
    // (child processes, sockets) must not stall this wait until its deadline passes.
    let process = p
    let port: Int? = await withCheckedContinuation { (done: CheckedContinuation<Int?, Never>) in
        Thread {
            guard let port = boundPort(in: log, prefix: "dashboard: ", process: process, deadline: .seconds(240)) else { return done.resume(returning: nil) }
            // Serving; wait until the state is loaded (slow on a busy machine with a debug build).
            let end = ContinuousClock.now + .seconds(240)
            while ContinuousClock.now < end && process.isRunning {
                if httpGet("http://127.0.0.1:\(port)/health").body.contains("\"status\":\"ok\"") { return done.resume(returning: port) }
                Thread.sleep(forTimeInterval: 0.1)
            }
            done.resume(returning: nil)
        }.start()
    }
    guard let port else {
        p.terminate()
        throw TestSetupError("the dashboard did not start or load its state: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }
    return (port, { process.terminate(); process.waitUntilExit() })
}

@Suite(.serialized) struct ServerTests {
    @Test func handlersServeTheMartsNumbers() async throws {
        let dir = try stateDirectory(try world(customers: 600, months: 12))
        let (snapshot, _) = try StateDirectory(dir.path).load()
        let d = DashboardData(snapshot: snapshot)
        let (port, stop) = try await serve(dir)
        defer { stop() }
        try #require(port > 0)
        let base = "http://127.0.0.1:\(port)"

        let (hs, health, _) = await get(base + "/health")
        #expect(hs == 200 && health.contains("\"status\":\"ok\""))
        let (ks, kpis, _) = await get(base + "/api/kpis")
        #expect(ks == 200)
        let k = try #require(try JSONSerialization.jsonObject(with: Data(kpis.utf8)) as? [String: Any])
        #expect((k["all_time"] as? [String: Any])?["revenue_cents"] as? Int64 == d.kpis.allTime.revenueCents)
        #expect(k["mrr_at_risk_cents"] as? Int64 == d.kpis.mrrAtRiskCents)

        let month = d.months[d.months.count - 2]
        let (ms, mart, _) = await get(base + "/api/marts/mart_revenue_monthly?plan=premium&month=\(month)")
        #expect(ms == 200)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(mart.utf8)) as? [[String: Any]])
        let expected = d.table("mart_revenue_monthly").records.first { $0["month"]?.text == month && $0["plan"]?.text == "premium" }!
        #expect(rows.count == 1)
        #expect(rows.first?["revenue_cents"] as? Int64 == expected["revenue_cents"]?.int)
        let (allStatus, allRows, _) = await get(base + "/api/marts/mart_customer_360")
        #expect(allStatus == 200)
        #expect((try JSONSerialization.jsonObject(with: Data(allRows.utf8)) as? [Any])?.count == snapshot.customers.count)

        let id = snapshot.customers.keys.sorted().first!
        let (cs, customer, _) = await get(base + "/api/customers/\(id)")
        #expect(cs == 200 && customer.contains("\"customer_id\":\"\(id)\"") && customer.contains("\"timeline\":[{"))
        let (pageStatus, page, _) = await get(base + "/customers/\(id)")
        #expect(pageStatus == 200 && page.contains("Timeline"))
        let (rs, risk, _) = await get(base + "/api/at-risk?limit=3")
        #expect(rs == 200)
        let riskRows = try #require(try JSONSerialization.jsonObject(with: Data(risk.utf8)) as? [[String: Any]])
        #expect(riskRows.count <= 3 && riskRows.allSatisfy { ["high", "critical"].contains($0["risk_segment"] as? String ?? "") })
        #expect(await get(base + "/api/at-risk?limit=0").0 == 400)
        #expect(await get(base + "/api/marts/nope").0 == 404)
        #expect(await get(base + "/api/customers/cus_nobody").0 == 404)
        #expect(await get(base + "/api/kpis", method: "POST").0 >= 400)
        let (metricsStatus, metrics, _) = await get(base + "/metrics")
        #expect(metricsStatus == 200 && metrics.contains("undercurrent_dashboard_reloads_total"))
        try expectPromtoolAccepts(metrics)
        for p in Page.allCases {
            let (s, html, headers) = await get(base + p.path)
            #expect(s == 200 && html.contains("<h1>\(p.title)</h1>"))
            #expect(headers["Content-Security-Policy"]?.contains("default-src 'none'") == true)
        }
    }

    @Test func aTokenIsRequiredWhenSetAndHealthStaysOpen() async throws {
        let dir = try stateDirectory(try world(customers: 100, months: 4))
        let token = "s3cret-token-0123456789"
        let (port, stop) = try await serve(dir, token: token)
        defer { stop() }
        let base = "http://127.0.0.1:\(port)"
        #expect(await get(base + "/api/kpis").0 == 401)
        #expect(await get(base + "/").0 == 401)
        #expect(await get(base + "/api/kpis", headers: ["Authorization": "Bearer wrong"]).0 == 401)
        #expect(await get(base + "/api/kpis", headers: ["Authorization": "Bearer \(token)"]).0 == 200)
        #expect(await get(base + "/health").0 == 200)
        let (s, _, headers) = await get(base + "/?token=\(token)")
        #expect(s == 200)
        #expect(headers["Set-Cookie"]?.hasPrefix("uc_token=\(token)") == true)
        #expect(await get(base + "/risk", headers: ["Cookie": "uc_token=\(token)"]).0 == 200)
    }

    @Test func pagesFollowTheStateAsTheConsumerCheckpoints() async throws {
        let dir = try stateDirectory(try world(customers: 100, months: 4))
        let (port, stop) = try await serve(dir)
        defer { stop() }
        let base = "http://127.0.0.1:\(port)"
        let before = await get(base + "/api/version").1
        // Another consumer run over a longer history into the same state directory: new checkpoints.
        let longer = try stateDirectory(try world(customers: 100, months: 6))
        for f in try FileManager.default.contentsOfDirectory(atPath: longer.path) {
            let target = dir.appendingPathComponent(f)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: longer.appendingPathComponent(f), to: target)
        }
        // Polled from a thread of its own (see `serve`); the dashboard rereads the state within a second.
        let after: String = await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
            Thread {
                var after = before
                let end = ContinuousClock.now + .seconds(60)
                while after == before && ContinuousClock.now < end {
                    Thread.sleep(forTimeInterval: 0.3)
                    after = httpGet(base + "/api/version").body
                }
                done.resume(returning: after)
            }.start()
        }
        #expect(after != before)
    }
}

/// Headless Chromium loads every page of a running instance: the charts are in the DOM, the console has no
/// errors, and a screenshot of each page is saved under .build/test-artifacts/screenshots.
@Suite(.serialized) struct BrowserTests {
    static func chromium() -> String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func run(_ binary: String, _ args: [String]) async throws -> (String, String) {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("uc-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let outURL = tmp.appendingPathComponent("out"), errURL = tmp.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                       "--user-data-dir=\(tmp.appendingPathComponent("profile").path)"] + args
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        // On a thread of its own (see `serve`): a starved cooperative pool must not make the deadline pass.
        let process = p
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                let end = ContinuousClock.now + .seconds(120)
                while process.isRunning && ContinuousClock.now < end { Thread.sleep(forTimeInterval: 0.1) }
                if process.isRunning { process.terminate() }
                done.resume()
            }.start()
        }
        return (try String(contentsOf: outURL, encoding: .utf8), (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    @Test func everyPageRendersInARealBrowserWithoutConsoleErrors() async throws {
        let binary = try #require(Self.chromium(), "headless Chromium is needed: scripts/test.sh installs Debian's chromium")
        let dir = try stateDirectory(try world(customers: 800, months: 14))
        let id = try StateDirectory(dir.path).load().0.customers.keys.sorted().first!
        let (port, stop) = try await serve(dir)
        defer { stop() }
        try #require(port > 0)
        let artifacts = root.appendingPathComponent(".build/test-artifacts/screenshots")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let pages = Page.allCases.map { ($0.rawValue, $0.path) } + [("customer", "/customers/\(id)")]
        for (name, path) in pages {
            let url = "http://127.0.0.1:\(port)\(path)"
            let (dom, log) = try await Self.run(binary, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", url])
            #expect(dom.contains("<h1>"), "\(name): no page")
            if name != "alerts" && name != "retention" && name != "customer" {
                #expect(dom.contains("<svg") && (dom.contains("<path") || dom.contains("<rect")), "\(name): no chart drawn")
            }
            let consoleErrors = log.split(separator: "\n").filter { $0.contains("CONSOLE") && ($0.contains("ERROR") || $0.contains("Uncaught")) }
            #expect(consoleErrors.isEmpty, "\(name): \(consoleErrors)")
            let shot = artifacts.appendingPathComponent("\(name).png")
            try? FileManager.default.removeItem(at: shot)
            _ = try await Self.run(binary, ["--window-size=1400,1800", "--screenshot=\(shot.path)", url])
            let png = try Data(contentsOf: shot)
            #expect(png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "\(name): screenshot \(png.count) bytes")
        }
    }
}

/// Axis labels laid out by a real browser: on every page, no two labels of one axis overlap and none leaves its
/// chart (long decline reasons under the bars are turned, y labels get the room they need).
@Suite(.serialized) struct ChartLabelTests {
    static let measure = """
        <script>window.addEventListener('load',function(){var problems=[];var charts=document.querySelectorAll('svg.chart');
        charts.forEach(function(svg,ci){var box=svg.getBoundingClientRect();['xlabel','ylabel'].forEach(function(cls){
        var r=Array.prototype.map.call(svg.querySelectorAll('text.'+cls),function(t){return t.getBoundingClientRect()});
        r.forEach(function(a,i){if(a.left<box.left-0.5||a.right>box.right+0.5||a.top<box.top-0.5||a.bottom>box.bottom+0.5){problems.push('chart '+ci+' '+cls+' '+i+' leaves the chart')}
        for(var j=i+1;j<r.length;j++){var b=r[j];var w=Math.min(a.right,b.right)-Math.max(a.left,b.left),h=Math.min(a.bottom,b.bottom)-Math.max(a.top,b.top);
        if(w>0.5&&h>0.5){problems.push('chart '+ci+' '+cls+' '+i+' overlaps '+j)}}})})});
        document.body.setAttribute('data-charts',String(charts.length));document.body.setAttribute('data-problems',problems.join('; '))});</script>
        """

    @Test func axisLabelsNeitherOverlapNorLeaveTheirChartOnAnyPage() async throws {
        let binary = try #require(BrowserTests.chromium(), "headless Chromium is needed: scripts/test.sh installs Debian's chromium")
        let data = DashboardData(snapshot: try snapshot(try world(customers: 800, months: 14)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uc-labels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var checked = 0
        for page in Page.allCases {
            let html = PageRenderer(data: data).document(page).replacingOccurrences(of: "</body>", with: Self.measure + "</body>")
            let file = dir.appendingPathComponent("\(page.rawValue).html")
            try html.write(to: file, atomically: true, encoding: .utf8)
            let (dom, _) = try await BrowserTests.run(binary, ["--window-size=1400,1800", "--virtual-time-budget=3000", "--dump-dom", file.absoluteString])
            let charts = dom.range(of: "data-charts=\"").map { Int(dom[$0.upperBound...].prefix { $0.isNumber }) ?? 0 } ?? -1
            #expect(charts >= 0, "\(page.rawValue): the measurement did not run")
            let problems = dom.range(of: "data-problems=\"").map { String(dom[$0.upperBound...].prefix { $0 != "\"" }) } ?? "not measured"
            #expect(problems.isEmpty, "\(page.rawValue): \(problems)")
            checked += max(charts, 0)
        }
        #expect(checked >= 10, "only \(checked) charts measured")
    }
}
