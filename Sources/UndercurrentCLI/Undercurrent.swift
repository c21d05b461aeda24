import ArgumentParser
import Consumer
import Foundation
import Logging
import Synchronization

/// `undercurrent`: the root command. Each subcommand's logic lives in library code so tests call it
/// without starting a process.
public struct Undercurrent: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "undercurrent",
        abstract: "Shows a subscription business the revenue its payments are quietly losing.",
        discussion: "The event format is documented in docs/events.md, the marts in docs/marts.md, the design in docs/architecture.md.\n\n"
            + ExitStatus.help,
        subcommands: [
            BrokerCommand.self,
            DemoCommand.self,
            SmokeCommand.self,
            SimulateCommand.self,
            MartsCommand.self,
            CheckCommand.self,
            EvaluateCommand.self,
            EvaluateRiskCommand.self,
            RecordCommand.self,
            ReplayCommand.self,
            LoadTestCommand.self,
            DashboardCommand.self,
            ReportCommand.self,
        ]
    )

    public init() {}
}

/// Options every command has.
public struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: String = "info"

    @Option(name: .long, help: "Log format: text (one readable line per entry) or json (one JSON object per line, for log shippers).")
    public var logFormat: String = "text"

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: expected one of trace, debug, info, notice, warning, error, critical; got '\(logLevel)'")
        }
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("--log-format: expected text or json; got '\(logFormat)'")
        }
        // Chosen here, once the flags are read, so that a command that logs nothing prints its own lines (`Console`)
        // in the format asked for.
        LoggingSetup.bootstrapOnce(json: logFormat == "json")
    }

    public func makeLogger(_ label: String) -> Logger {
        LoggingSetup.bootstrapOnce(json: logFormat == "json")
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

enum LoggingSetup {
    private static let format = Mutex<Bool?>(nil)
    /// Whether the process logs JSON: then the lines a command prints on standard error itself (its summary,
    /// progress, errors) are JSON entries too, so that a log shipper reading standard error meets no other line.
    static var json: Bool { format.withLock { $0 == true } }
    /// The first call chooses the format for the whole process (swift-log is bootstrapped once).
    static func bootstrapOnce(json: Bool) {
        let first = format.withLock { f -> Bool in
            guard f == nil else { return false }
            f = json
            return true
        }
        guard first else { return }
        LoggingSystem.bootstrap { label -> any LogHandler in json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label) }
        if json { StopSignal.sayExitingNow.withLock { $0 = { line in JSONLogHandler.write(line, level: .warning) } } }
    }
}

/// Writes each entry as one JSON object per line to standard error: time, level, logger label, message,
/// source module and metadata (values as strings).
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    struct Entry: Encodable {
        var time: String
        var level: String
        var logger: String
        var message: String
        var source: String
        var metadata: [String: String]?
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        Self.write(Entry(time: Self.now(), level: event.level.rawValue, logger: label, message: "\(event.message)", source: event.source,
                         metadata: all.isEmpty ? nil : all.mapValues { "\($0)" }))
    }

    /// A line the command prints itself (`Console`), as an entry of `level` from the logger named after the
    /// executable, source `console`.
    static func write(_ message: String, level: Logger.Level) {
        write(Entry(time: now(), level: level.rawValue, logger: ProcessInfo.processInfo.processName, message: message,
                    source: "console", metadata: nil))
    }

    static func now() -> String { Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) }  // UTC, with its Z

    static func write(_ entry: Entry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(entry) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }
}
