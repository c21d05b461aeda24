import Checkpoints
import Consumer
import ArgumentParser
import Archives
import Dashboard
import DashboardHTTP
import Foundation
import Marts

/// The bearer token from a flag or, better (it stays out of `ps`), the environment.
func dashboardToken(_ flag: String?) throws -> String? {
    let token = flag ?? ProcessInfo.processInfo.environment["UNDERCURRENT_DASHBOARD_TOKEN"]
    if let token, token.count < 16 || token.contains(where: { $0.isWhitespace || $0 == ";" }) {
        throw ValidationError("--token: expected at least 16 characters without spaces or ';'")
    }
    return token
}

public struct DashboardCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the dashboard, the narrative and the JSON API from a state directory.",
        discussion: """
        Reads the checkpoints (and alerts.ndjson) a marts-consumer writes to --state-dir and reloads them as they \
        change, so pages follow a running consumer. Pages: / (executive), /risk, /action, /product, /retention, \
        /growth, /alerts, /customers/ID. API: /api/kpis, /api/marts, /api/marts/NAME?month=&plan=&limit=&offset= (X-Total-Count: the rows matched), /api/customers/ID, \
        /api/at-risk?limit=, /api/alerts, /api/alert-reach, /api/narrative, /api/version, /health, /metrics. Read-only; binds to \
        127.0.0.1 unless --listen says otherwise; --token (or UNDERCURRENT_DASHBOARD_TOKEN) requires a bearer token.
        """
    )

    @Option(help: "State directory of a marts-consumer.") var stateDir: String
    @Option(help: "HOST:PORT to listen on.") var listen = "127.0.0.1:8080"
    @Option(help: "Require this bearer token (at least 16 characters); default: $UNDERCURRENT_DASHBOARD_TOKEN.") var token: String?
    @Option(help: "Prometheus text to serve at /metrics (default: STATE_DIR/metrics.prom when present).") var metricsFile: String?
    @OptionGroup var metrics: MetricsOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws {
        _ = try ListenAddress.parse(listen, option: "--listen")
        _ = try dashboardToken(token)
    }

    public func run() throws {
        let logger = common.makeLogger("dashboard")
        guard FileManager.default.fileExists(atPath: stateDir) else { throw ValidationError("--state-dir: \(stateDir) does not exist") }
        let address = try ListenAddress.available(listen, option: "--listen")
        if let other = try metrics.metricsListen.map({ try ListenAddress.available($0, option: "--metrics-listen") }) {
            try ListenAddress.checkApart((address, "--listen"), (other, "--metrics-listen"),
                                         advice: "give each its own port, or leave out --metrics-listen (the dashboard serves /metrics too)")
        }
        let dir = URL(fileURLWithPath: stateDir)
        let metrics = metricsFile.map { URL(fileURLWithPath: $0) } ?? dir.appendingPathComponent("metrics.prom")
        let source = StateDirectorySource(directory: dir, metricsFile: metrics)
        let server = DashboardServer(source: source, host: address.host, port: address.port, token: try dashboardToken(token))
        let endpoint = try self.metrics.services(exposition: { source.metricsText }, logger: logger)
        try ServiceRunner.run(endpoint + server.services(logger: logger) { port in
            Console.err("dashboard: \(address.url(port: port))/ (state \(dir.path)); Ctrl-C stops")
        }, stop: StopSignal(), logger: logger)
    }
}

public struct ReportCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write every dashboard page into one self-contained HTML file (or Markdown) for sharing."
    )

    @Option(help: "State directory of a marts-consumer.") var stateDir: String
    @Option(help: "File to write ('-' for stdout).") var out = "report.html"
    @Option(help: "html or md (default: md when --out ends in .md or .markdown, else html).") var format: String?
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws {
        if let format, !["html", "md"].contains(format) { throw ValidationError("--format: expected html or md, got '\(format)'") }
    }

    /// The format asked for, or the one the file's name says (a report written to `r.md` was HTML).
    var resolvedFormat: String {
        if let format { return format }
        let name = out.lowercased()
        return name.hasSuffix(".md") || name.hasSuffix(".markdown") ? "md" : "html"
    }

    public func run() throws {
        try StartChecks.file(out, "the report")
        let state = try StartChecks.stateDirectory(stateDir)
        let (snapshot, _) = try state.load()
        // As the dashboard shows it: with the partial-history banner when the history is partial.
        let data = DashboardData(snapshot: snapshot, alerts: AlertLog.read(stateDirectory: URL(fileURLWithPath: stateDir)),
                                 historyGaps: HistoryStart.summaries(state.history()))
        let alerting = StateDirectorySource.alerting(fromCheckpointIn: URL(fileURLWithPath: stateDir)) ?? .unknown
        let format = resolvedFormat
        let text = format == "md" ? MarkdownReport.render(data, alerting: alerting)
            : PageRenderer(data: data, alerting: alerting).report()
        if out == "-" { print(text) } else {
            try OutputFile.write(Data(text.utf8), to: out, what: "the report")
            Console.err("report: \(out) (\(format), as of \(data.asOf?.description ?? "-"))")
        }
    }
}
