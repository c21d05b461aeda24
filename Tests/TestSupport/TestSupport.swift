import Config
import Events
import Foundation
import Kafka
import Logging
import Marts
import Simulation

/// Helpers every test target shares: where the checkout is, temporary directories, a quiet logger, the
/// package's executables as child processes.

/// The checkout's root directory.
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The checkout's `config/` directory.
public let repoConfig = repoRoot.appendingPathComponent("config")

/// A logger that prints nothing below critical.
public let quiet: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

/// A log handler that hands every record at `logLevel` or above to `onLog` (tests that read what was logged).
public struct CallbackLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let onLog: @Sendable (LogEvent) -> Void

    public init(level: Logger.Level = .trace, _ onLog: @escaping @Sendable (LogEvent) -> Void) {
        logLevel = level
        self.onLog = onLog
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) { onLog(event) }
}

/// A new empty directory under the system's temporary directory.
public func tempDir() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("uc-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A test setup problem, in one line.
public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where the package's executables are: beside the running test bundle (the debug or release directory of the
/// build that ran the tests: `scripts/test.sh` builds into `.build-tests`), else `.build/debug`.
public let binaryDirectory: URL = {
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let beside = FileManager.default.isExecutableFile(atPath: bundle.appendingPathComponent("undercurrent").path)
    return beside ? bundle : repoRoot.appendingPathComponent(".build/debug")
}()

/// An executable of this package, built beside the tests (`swift build --build-tests`).
public func binary(_ name: String) throws -> URL {
    let url = binaryDirectory.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
        throw TestSetupError("\(url.path) is missing: build all products (swift build --build-tests) before the tests")
    }
    return url
}

/// Starts an executable of this package as a child process, its standard error to `stderr` (or nowhere).
public func launch(_ name: String, _ args: [String], stderr: URL? = nil) throws -> Process {
    let p = Process()
    p.executableURL = try binary(name)
    p.arguments = args
    if let stderr {
        FileManager.default.createFile(atPath: stderr.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: stderr)
    } else {
        p.standardError = FileHandle.nullDevice
    }
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
}

/// A simulated history with failures, retries, churn and reactivations.
public func simulatedEvents(customers: Int = 150, months: Int = 14, seed: UInt64 = 11, scenario: String = "payment-incident") -> [Event] {
    var config = try! ConfigLoader.load(scenario: scenario, configDir: repoConfig)
    config.payments.failureRate = ["standard": 0.2, "premium": 0.2, "enterprise": 0.2]  // plenty of dunning stories
    config.conversion.paidShare = 0.6
    config.churn.reactivationShare = 0.5
    let start = Timestamp(year: 2024, month: 1, day: 1)
    return Array(try! World(SimulationParameters(config: config, seed: seed, customers: customers, start: start,
                                                 end: start.addingMonths(months))))
}

public func martState(_ events: [Event]) -> MartState {
    var s = MartState()
    for e in events { _ = s.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
    return s
}

/// The marts of these states merged, as exported.
public func export(_ states: [MartState]) -> [MartTable] { MartSnapshot(states).tables() }

/// The default simulated history (150 customers over 14 months).
public let history = simulatedEvents()

/// Two days of normal first attempts, then an hour of gateway timeouts, then normal again.
public func spikeEvents() -> [Event] {
    var rng = Xoshiro(seed: 4)
    let start = Timestamp(year: 2025, month: 3, day: 1)
    var events: [Event] = []
    let spike = 2 * 24 * 60
    for m in 0..<(spike + 4 * 60) {
        for i in 0..<6 {
            let id = "e\(m)_\(i)", customer = "cus_\(rng.int(0...499))"
            let t = start.adding(ms: Int64(m) * 60_000 + Int64(i) * 10_000)
            let failRate = (spike..<(spike + 60)).contains(m) ? 0.5 : 0.04
            let payload: Event.Payload = rng.chance(failRate)
                ? .paymentFailed(paymentID: id, invoiceID: id, plan: .premium, amountCents: 14900, currency: "USD", attempt: 1,
                                 failureReason: failRate > 0.1 ? .gatewayTimeout : .insufficientFunds, nextRetryAt: nil)
                : .paymentSucceeded(paymentID: id, invoiceID: id, plan: .premium, amountCents: 14900, currency: "USD", attempt: 1)
            events.append(Event(eventID: id, occurredAt: t, customerID: customer, payload: payload))
        }
    }
    return events
}

/// Loose alert rules for engine tests.
public let testRules = AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [
    .init(id: "overall", scope: .overall, shortWindowMinutes: 10, longWindowHours: 24, minAttempts: 30, minFailures: 8,
          factor: 2, minIncrease: 0.08, resolveAfterEvaluations: 10),
])

/// A stream of attempts: `perMinute` attempts a minute, each failing with probability `failureRate(minute)`.
public func attempts(minutes: Int, perMinute: Int, seed: UInt64 = 1, failureRate: (Int) -> Double) -> [Event] {
    var rng = Xoshiro(seed: seed)
    let start = Timestamp(year: 2025, month: 1, day: 1)
    var out: [Event] = []
    for m in 0..<minutes {
        for i in 0..<perMinute {
            let t = start.adding(ms: Int64(m) * 60_000 + Int64(i * 60_000 / max(perMinute, 1)))
            let id = "e\(m)_\(i)"
            let payload: Event.Payload = rng.chance(failureRate(m))
                ? .paymentFailed(paymentID: id, invoiceID: id, plan: .premium, amountCents: 100, currency: "USD", attempt: 1,
                                 failureReason: .gatewayTimeout, nextRetryAt: nil)
                : .paymentSucceeded(paymentID: id, invoiceID: id, plan: .premium, amountCents: 100, currency: "USD", attempt: 1)
            out.append(Event(eventID: id, occurredAt: t, customerID: "c\(i)", payload: payload))
        }
    }
    return out
}

/// The history as input messages: topic, murmur2 partition of the key (as the producers write them), and
/// consecutive offsets per topic-partition.
public func messages(_ events: [Event], partitions: Int = 4) -> [KafkaMessage] {
    var next: [TopicPartition: Int64] = [:]
    return events.map { e in
        let key = Array(e.customerID.utf8)
        let tp = TopicPartition(e.topic.rawValue, Int32(Murmur2.partition(for: key, partitionCount: partitions)))
        let offset = next[tp, default: 0]
        next[tp] = offset + 1
        return KafkaMessage(topic: tp.topic, partition: tp.partition, offset: offset, key: key[...],
                            value: EventEncoder.encode(e)[...], timestampMs: e.occurredAt.ms)
    }
}

