import ArgumentParser
import Foundation
import Logging

/// `undercurrent`: the root command. Each subcommand's logic lives in library code so tests call it
/// without starting a process.
public struct Undercurrent: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "undercurrent",
        abstract: "Shows a subscription business the revenue its payments are quietly losing.",
        discussion: "The event format is documented in docs/events.md, the marts in docs/marts.md, the design in docs/architecture.md.",
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

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: expected one of trace, debug, info, notice, warning, error, critical; got '\(logLevel)'")
        }
    }

    public func makeLogger(_ label: String) -> Logger {
        LoggingSetup.bootstrapOnce()
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

enum LoggingSetup {
    private static let once: Void = {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
    }()
    static func bootstrapOnce() { _ = once }
}
