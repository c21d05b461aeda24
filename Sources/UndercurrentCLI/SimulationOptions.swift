import Config
import ArgumentParser
import Events
import Foundation
import Simulation

/// The options every simulating command shares (producers, `simulate`, `loadtest`, the demo).
public struct SimulationOptions: ParsableArguments {
    @Option(help: "Scenario name: a file scenarios/NAME.yaml of the config (built in: baseline, payment-incident, incident-shapes, partial-recovery, plan-outages, rescue-mission, peak-load).")
    public var scenario = "baseline"
    @Option(help: "Random seed: the same seed, scenario and config give the same events.") public var seed: UInt64 = 42
    @Option(help: "Number of customers.") public var customers = 2000
    @Option(help: "Start of simulated time, YYYY-MM-DD (UTC).") public var start = "2024-01-01"
    @Option(help: "Simulated months (default 24).") public var months: Int?
    @Option(help: "End of simulated time instead of --months, YYYY-MM-DD.") public var until: String?
    @Option(help: "Emit shard i of n (customers are split into n disjoint sets), e.g. 0/4.") public var shard = "0/1"
    @Option(help: "Directory holding baseline.yaml, scenarios/ and alerts.yaml (default: $UNDERCURRENT_CONFIG_DIR, ./config, /etc/undercurrent, else the built-in defaults).") public var configDir: String?

    public init() {}

    /// The most customers a simulation takes.
    public static let maxCustomers = 50_000_000

    public func validate() throws {
        guard customers >= 1 && customers <= Self.maxCustomers else { throw ValidationError("--customers: expected 1 to \(Self.maxCustomers), got \(customers)") }
        if let months, !(1...600).contains(months) { throw ValidationError("--months: expected 1 to 600, got \(months)") }
        // Both end the simulated time: one of them would be quietly ignored.
        if months != nil && until != nil { throw ValidationError("--months and --until: give one of them, not both") }
        _ = try startTime()
        _ = try endTime()
        _ = try shardPair()
    }

    func startTime() throws -> Timestamp {
        guard let d = Day(iso: Array(start.utf8)) else { throw ValidationError("--start: expected a date YYYY-MM-DD in 2000-2099, got '\(start)'") }
        return Timestamp(ms: d.days * Timestamp.millisecondsPerDay)
    }

    func endTime() throws -> Timestamp {
        if let until {
            guard let d = Day(iso: Array(until.utf8)) else { throw ValidationError("--until: expected a date YYYY-MM-DD in 2000-2099, got '\(until)'") }
            let t = Timestamp(ms: d.days * Timestamp.millisecondsPerDay)
            guard t > (try startTime()) else { throw ValidationError("--until: must be after --start") }
            return t
        }
        return try startTime().addingMonths(months ?? 24)
    }

    func shardPair() throws -> (Int, Int) {
        let parts = shard.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard: expected i/n with 0 ≤ i < n, e.g. 0/4; got '\(shard)'")
        }
        return (i, n)
    }

    public func parameters() throws -> SimulationParameters {
        let config = try ConfigFileError.asValidation { try ConfigLoader.load(scenario: scenario, location: try ConfigLoader.location(configDir)) }
        let (i, n) = try shardPair()
        return SimulationParameters(config: config, seed: seed, customers: customers, start: try startTime(),
                                    end: try endTime(), shardIndex: i, shardCount: n)
    }

    /// The world of these options, or of `parameters` made from them already.
    public func world(_ parameters: SimulationParameters? = nil) throws -> World {
        do { return try World(try parameters ?? self.parameters()) } catch let e as ConfigError { throw ValidationError(e.description) }
    }
}

extension ConfigFileError {
    /// Runs `body`, turning a configuration error into the command line's error (with what to pass).
    static func asValidation<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ConfigFileError {
            switch e.code {
            case .noDirectory: throw ValidationError(e.description)
            case .unknownScenario: throw ValidationError("--scenario: \(e)")
            case .unreadable, .invalid: throw ValidationError(e.description)
            }
        }
    }
}
