import Checkpoints
import Consumer
import Charts
import Dashboard
import Events
import Foundation
import Hummingbird
import Logging
import Marts
import NIOCore
import ServiceLifecycle
import Synchronization
import Telemetry

/// Where the dashboard's data comes from: a state directory's checkpoints (and alert log), reloaded when
/// they change (`StateWatcher`). Pages are served from the last loaded state.
public final class StateDirectorySource: Sendable {
    public let directory: URL
    private let current = Mutex<DashboardData?>(nil)
    private let signature = Mutex<String>("")
    private let loadError = Mutex<String?>(nil)
    private let reloads = Atomic<Int>(0)
    private let historyRecords = Mutex<[HistoryStart]>([])
    /// Where each topic-partition's history starts, as last loaded.
    public var history: [HistoryStart] { historyRecords.withLock { $0 } }
    /// The process's metrics: the consumer's own when it serves the dashboard, and the dashboard's.
    public let metrics: MetricsRegistry
    /// A consumer's metrics file, served ahead of the registry's (a dashboard run apart from its consumer).
    let metricsFile: URL?
    /// The consumer's sinks that can fall behind, when served by the consumer itself.
    let liveSinks: (@Sendable () -> [DashboardAPI.SinkHealth])?
    /// When served by a consumer reading Kafka: how long no broker has answered (nil while one does).
    let liveKafkaWaiting: (@Sendable () -> Double?)?
    /// Served by a consumer with alerts: what its failure-spike detector can catch now and what it left out.
    let liveAlerting: (@Sendable () -> AlertCoverage)?
    /// Otherwise, the same from the alert engine's checkpoint in the state directory (nil without one).
    private let checkpointedAlerting = Mutex<AlertCoverage?>(nil)

    /// What the failure-spike detector can catch and the payment attempts it left out as late: live when a
    /// consumer serves the dashboard, else as of the alert engine's last checkpoint; `.unknown` when the state
    /// directory has none (a consumer run without alerts).
    public var alerting: AlertCoverage { liveAlerting?() ?? checkpointedAlerting.withLock { $0 } ?? .unknown }

    public init(directory: URL, metricsFile: URL? = nil, metrics: MetricsRegistry = MetricsRegistry(),
                liveSinks: (@Sendable () -> [DashboardAPI.SinkHealth])? = nil, liveKafkaWaiting: (@Sendable () -> Double?)? = nil,
                liveAlerting: (@Sendable () -> AlertCoverage)? = nil) {
        self.liveAlerting = liveAlerting
        self.directory = directory
        self.liveKafkaWaiting = liveKafkaWaiting
        self.metricsFile = metricsFile
        self.metrics = metrics
        self.liveSinks = liveSinks
        let reloaded = TotalCounter(metrics.counter("undercurrent_dashboard_reloads_total", help: "State reloads by the dashboard."))
        let firing = metrics.gauge("undercurrent_dashboard_alerts", help: "Alerts in the alert log by state.", labels: [("state", "firing")])
        let resolved = metrics.gauge("undercurrent_dashboard_alerts", help: "Alerts in the alert log by state.", labels: [("state", "resolved")])
        metrics.onCollect { [weak self] in
            guard let self else { return }
            reloaded.update(reloadCount)
            let alerts = data.alerts
            firing.set(Double(alerts.filter { $0.state == .firing }.count))
            resolved.set(Double(alerts.filter { $0.state == .resolved }.count))
        }
    }

    public var data: DashboardData { loadedData ?? DashboardData(snapshot: MartSnapshot()) }
    /// The loaded state; nil until the first load.
    public var loadedData: DashboardData? { current.withLock { $0 } }
    public var isLoaded: Bool { loadedData != nil }
    public var lastError: String? { loadError.withLock { $0 } }
    public var reloadCount: Int { reloads.load(ordering: .relaxed) }

    /// Sizes and modification times of every file under the directory: a change means a new checkpoint.
    func fingerprint() -> String {
        guard let e = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.contentModificationDateKey, .fileSizeKey]) else { return "" }
        var parts: [String] = []
        for case let url as URL in e {
            let v = try? url.resourceValues(forKeys: [.contentModificationDateKey, .fileSizeKey])
            parts.append("\(url.path):\(v?.fileSize ?? 0):\(v?.contentModificationDate?.timeIntervalSince1970 ?? 0)")
        }
        return parts.sorted().joined(separator: "|")
    }

    /// Loads the state if the files changed since the last load.
    public func refresh(logger: Logger) {
        let f = fingerprint()
        guard f != signature.withLock({ $0 }) || !isLoaded else { return }
        do {
            let state = try StateDirectory(directory.path)
            let (snapshot, _) = try state.load()
            let history = state.history()
            let d = DashboardData(snapshot: snapshot, alerts: AlertLog.read(stateDirectory: directory), historyGaps: HistoryStart.summaries(history))
            historyRecords.withLock { $0 = history }
            if liveAlerting == nil { checkpointedAlerting.withLock { $0 = Self.alerting(fromCheckpointIn: directory) } }
            current.withLock { $0 = d }
            signature.withLock { $0 = f }
            loadError.withLock { $0 = nil }
            reloads.add(1, ordering: .relaxed)
        } catch {
            // A checkpoint being rewritten can be read half-way; the next round reads it whole.
            loadError.withLock { $0 = "\(error)" }
            logger.warning("dashboard: cannot load \(directory.path): \(error)")
        }
    }

    /// The detector's reach as of the alert engine's checkpoint, restored under the rules it was written with, and
    /// the attempts it had left out as late; nil without such a checkpoint.
    public static func alerting(fromCheckpointIn directory: URL) -> AlertCoverage? {
        guard let loaded = try? AlertStateStore(stateDirectory: directory).load(rules: nil),
              let rules = try? JSONDecoder().decode(AlertRules.self, from: Data(loaded.rules.utf8)), rules.sequential != nil
        else { return nil }
        let engine = AlertEngine(rules: rules, state: loaded.state)
        return AlertCoverage(reach: engine.detectionReach(outageRate: ConsumerMetrics.referenceOutageRate), lateAttempts: engine.lateAttempts)
    }

    /// What `/metrics` serves: the metrics file's families (those this process does not export itself), then
    /// the registry's.
    public var metricsText: String {
        let own = metrics.exposition()
        guard let metricsFile, let file = try? String(contentsOf: metricsFile, encoding: .utf8) else { return own }
        let ownFamilies = Set(own.split(separator: "\n").compactMap(Self.family))
        let kept = file.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            guard let family = Self.family(line) else { return true }
            return !ownFamilies.contains(family)
        }
        return kept.joined(separator: "\n") + (file.hasSuffix("\n") || file.isEmpty ? "" : "\n") + own
    }

    /// The metric family a line of the text format belongs to (`# HELP name`, `# TYPE name`, or a sample of
    /// it or of its `_bucket` / `_sum` / `_count` series).
    static func family(_ line: Substring) -> Substring? {
        if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
            return line.dropFirst(7).split(separator: " ", maxSplits: 1).first
        }
        guard !line.hasPrefix("#"), let name = line.split(whereSeparator: { $0 == "{" || $0 == " " }).first else { return nil }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) { return name.dropLast(suffix.count) }
        return name
    }
}

/// The HTTP side: pages, the JSON API, /health and /metrics. Read-only (GET only), loopback by default,
/// optional bearer token (header, or a cookie set by visiting any page once with `?token=`).
public struct DashboardServer: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var token: String?
    public let source: StateDirectorySource

    public init(source: StateDirectorySource, host: String = "127.0.0.1", port: Int = 8080, token: String? = nil) {
        self.source = source
        self.host = host
        self.port = port
        self.token = token
    }

    static func html(_ s: String, status: HTTPResponse.Status = .ok) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/html; charset=utf-8"
        h[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
        h[.xContentTypeOptions] = "nosniff"
        h[.cacheControl] = "no-store"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    static func json(_ s: String, status: HTTPResponse.Status = .ok, total: Int? = nil) -> Response {
        var h = HTTPFields()
        h[.contentType] = "application/json; charset=utf-8"
        h[.xContentTypeOptions] = "nosniff"
        h[.cacheControl] = "no-store"
        if let total { h[Self.totalCount] = String(total) }
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    /// The rows a mart's filters match, before `limit` and `offset`: a client pages until it has this many.
    public static let totalCount = HTTPFields.Element.Name("X-Total-Count")!

    /// A 400 naming the first query parameter a route does not take (a misspelt filter would otherwise answer
    /// every row, as if it had matched), or nil. `token` is taken everywhere (see `BearerToken`).
    static func unknownParameter(_ request: Request, allowed: [String]) -> Response? {
        guard let name = request.uri.queryParameters.first(where: { !allowed.contains(String($0.key)) && $0.key != "token" })?.key else { return nil }
        let expected = allowed.isEmpty ? "this path takes none" : "expected " + allowed.joined(separator: ", ")
        return json(DashboardAPI.error("unknown parameter '\(name)': \(expected)"), status: .badRequest)
    }

    /// A whole-number query parameter in `range`: nil when absent; throws a 400 naming it when it is not.
    static func integer(_ request: Request, _ name: String, in range: ClosedRange<Int>) throws(Refusal) -> Int? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            let bound = range.upperBound == Int.max ? "\(range.lowerBound) or more" : "\(range.lowerBound) to \(range.upperBound)"
            throw Refusal(response: json(DashboardAPI.error("\(name): expected \(bound), got '\(text)'"), status: .badRequest))
        }
        return value
    }

    /// A request the API refuses, with the answer that says why.
    struct Refusal: Error {
        var response: Response
    }

    /// The most rows one `/api/marts/NAME` answer pages at.
    static let maximumLimit = 100_000

    static func text(_ s: String, type: String = "text/plain; version=0.0.4; charset=utf-8") -> Response {
        var h = HTTPFields()
        h[.contentType] = type
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestMetrics(registry: source.metrics))
        if let token { router.add(middleware: BearerToken(token: token)) }
        let source = self.source
        for page in Page.allCases {
            router.get(RouterPath(page.path)) { _, _ in
                Self.html(PageRenderer(data: source.data, alerting: source.alerting).document(page))
            }
        }
        router.get("/customers/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let doc = PageRenderer(data: source.data).customerDocument(id) else {
                return Self.html("<!doctype html><title>Not found</title><p>No customer \(Charts.escape(id)).</p>", status: .notFound)
            }
            return Self.html(doc)
        }
        router.get("/health") { _, _ in
            // One read: "ok" always comes with the state it loaded (a load between two reads said "ok" over empty data).
            let loaded = source.loadedData
            let d = loaded ?? DashboardData(snapshot: MartSnapshot())
            return Self.json(DashboardAPI.health(loaded: loaded != nil, d, lastError: source.lastError, sinks: source.liveSinks?() ?? [],
                                                 consumer: source.liveKafkaWaiting != nil, kafkaWaitingSeconds: source.liveKafkaWaiting?() ?? nil))
        }
        router.get("/metrics") { _, _ in Self.text(source.metricsText) }
        router.get("/api/version") { _, _ in
            let d = source.data
            return Self.json(DashboardAPI.version(d))
        }
        router.get("/api/kpis") { _, _ in Self.json(DashboardAPI.kpis(source.data)) }
        router.get("/api/narrative") { _, _ in Self.json(DashboardAPI.narrative(source.data, reach: source.alerting.reach)) }
        router.get("/api/alerts") { _, _ in Self.json(DashboardAPI.alerts(source.data)) }
        router.get("/api/alert-reach") { _, _ in
            guard let body = DashboardAPI.alertReach(source.alerting) else {
                return Self.json(DashboardAPI.error("no failure-spike detector in this state directory: its consumer runs without alerts or has not checkpointed yet"),
                                 status: .notFound)
            }
            return Self.json(body)
        }
        router.get("/api/history") { _, _ in Self.json(HistoryReport(source.history, customersWithoutSignup: source.data.snapshot.customersWithoutSignup).json) }
        router.get("/api/at-risk") { request, _ in
            if let refusal = Self.unknownParameter(request, allowed: ["limit"]) { return refusal }
            do throws(Refusal) {
                return Self.json(DashboardAPI.atRisk(source.data, limit: try Self.integer(request, "limit", in: 1...10_000) ?? 50))
            } catch {
                return error.response
            }
        }
        router.get("/api/marts") { _, _ in Self.json(DashboardAPI.martIndex()) }
        router.get("/api/marts/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            let d = source.data
            guard let table = d.tables[name] else {
                return Self.json(DashboardAPI.error("no mart \(name)", marts: MartSnapshot.martNames), status: .notFound)
            }
            // A filter that cannot match is a mistake to say, not an empty answer; one that is not known, too.
            if let refusal = Self.unknownParameter(request, allowed: ["month", "plan", "limit", "offset"]) { return refusal }
            let limit: Int?, offset: Int?
            do throws(Refusal) {
                limit = try Self.integer(request, "limit", in: 1...Self.maximumLimit)
                offset = try Self.integer(request, "offset", in: 0...Int.max)
            } catch {
                return error.response
            }
            let q = request.uri.queryParameters
            let month = q.get("month"), plan = q.get("plan")
            if let month, Month(month) == nil {
                return Self.json(DashboardAPI.error("month: expected YYYY-MM, got '\(month)'"), status: .badRequest)
            }
            let plans = Plan.allCases.map(\.rawValue) + ["all"]
            if let plan, !plans.contains(plan) {
                return Self.json(DashboardAPI.error("plan: expected one of \(plans.joined(separator: ", ")), got '\(plan)'"), status: .badRequest)
            }
            var rows = table.filtered(month: month, plan: plan)
            let total = rows.rows.count
            if limit != nil || offset != nil {
                let start = min(offset ?? 0, total)
                rows.rows = Array(rows.rows[start..<min(total, start + (limit ?? Self.maximumLimit))])
            }
            return Self.json(rows.json, total: total)
        }
        router.get("/api/customers/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let body = DashboardAPI.customer(source.data, id: id) else {
                return Self.json(DashboardAPI.error("no customer \(id)"), status: .notFound)
            }
            return Self.json(body)
        }
        return router
    }

    /// The dashboard's services, in start order: the HTTP server (`onBound` receives the bound port, useful with
    /// port 0), then the state watcher. At graceful shutdown the watcher stops first, then the server.
    public func services(logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "undercurrent"),
                              onServerRunning: { channel in onBound(channel.localAddress?.port ?? 0) }, logger: logger)
        return [.init(service: app, serviceName: "dashboard http://\(host):\(port)"),
                .init(service: StateWatcher(source: source, logger: logger), serviceName: "dashboard state watcher")]
    }
}

/// Reloads a state directory every `interval` until graceful shutdown. The first load happens at once, so
/// the server answers while it runs (`/health` says `loading` until the state is in); loading reads files,
/// so it runs on a queue of its own, never on Swift's cooperative pool.
public struct StateWatcher: Service {
    let source: StateDirectorySource
    var interval: Duration = .seconds(1)
    let logger: Logger
    private static let queue = DispatchQueue(label: "dashboard-reload")

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let (source, logger) = (source, logger)
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Self.queue.async {
                    source.refresh(logger: logger)
                    done.resume()
                }
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }
}

/// Requires `Authorization: Bearer TOKEN`, or the `uc_token` cookie, which `?token=TOKEN` sets. `/health`
/// stays open for probes.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        let header = request.headers[.authorization]
        let cookie = request.headers[.cookie]?.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix("uc_token=") }.map { String($0.dropFirst("uc_token=".count)) }
        if header == "Bearer \(token)" || cookie == token { return try await next(request, context) }
        if request.uri.queryParameters.get("token") == token {
            var response = try await next(request, context)
            response.headers[.setCookie] = "uc_token=\(token); HttpOnly; SameSite=Strict; Path=/"
            return response
        }
        var h = HTTPFields()
        h[.wwwAuthenticate] = "Bearer"
        h[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .unauthorized, headers: h, body: .init(byteBuffer: ByteBuffer(string: "unauthorized: a bearer token is required\n")))
    }
}
