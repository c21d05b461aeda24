import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts

/// What leaves the consumer because of one input message, as a value: the core returns these in message
/// order and the driver hands them to every sink.
public enum ConsumerOutput {
    /// A message that failed validation, for the dead-letter topic.
    case deadLetter(Rejection, KafkaMessage)
    /// A customer's risk segment changed.
    case riskChange(RiskChange)
    /// A failure-spike alert fired or resolved.
    case alert(Alert)
}

/// A place the consumer's outputs go to: a Kafka topic, a file, a webhook, a database. Sinks are called on
/// the consuming thread in output order; one that does slow I/O queues it (see `WebhookSink`). A new
/// destination is a new sink, not an edit of the core.
public protocol ConsumerSink: AnyObject, Sendable {
    /// Takes outputs in order. A throw stops the consumer (before its next checkpoint, so nothing is lost).
    func send(_ outputs: [ConsumerOutput]) throws
    /// Makes everything sent so far durable where it must be; called before each checkpoint, so that a
    /// checkpoint never covers outputs that could still be lost.
    func flush() throws
    /// Called once at the end.
    func close()
    /// Whether the sink mirrors the marts (`checkpointed` is called, and the core tracks changed customers for it).
    var mirrorsState: Bool { get }
    /// Whether the sink wants `checkpointed` now although no partition changed: it is catching up after an
    /// outage, or the marts' as-of moved elsewhere. Asked at every checkpoint opportunity.
    var wantsCheckpoint: Bool { get }
    /// Called at the end of each checkpoint, on the consuming thread, with every open partition as the
    /// checkpoint left it. Failures are the sink's to report and retry: the checkpoint is already durable.
    func checkpointed(_ partitions: [CheckpointedPartition])
    /// How far behind the checkpoints the sink is, for metrics and `/health`; nil for sinks that keep up by
    /// construction.
    var sinkStatus: SinkStatus? { get }
}

/// A sink that can fall behind the checkpoints (a database that is away): how far, for metrics and /health.
public struct SinkStatus: Sendable, Codable, Equatable {
    public var name: String
    public var connected: Bool
    /// Checkpoints taken since the sink last caught up.
    public var checkpointsBehind = 0
    /// How long ago the oldest of them was taken; 0 when caught up.
    public var secondsBehind = 0.0
    /// Transactions committed since start.
    public var commits = 0
    public init(name: String, connected: Bool, checkpointsBehind: Int = 0, secondsBehind: Double = 0, commits: Int = 0) {
        self.name = name
        self.connected = connected
        self.checkpointsBehind = checkpointsBehind
        self.secondsBehind = secondsBehind
        self.commits = commits
    }

    enum CodingKeys: String, CodingKey {
        case name, connected, checkpointsBehind = "checkpoints_behind", secondsBehind = "seconds_behind", commits
    }
}

extension ConsumerSink {
    public func flush() throws {}
    public func close() {}
    public var mirrorsState: Bool { false }
    public var wantsCheckpoint: Bool { false }
    public func checkpointed(_ partitions: [CheckpointedPartition]) {}
    public var sinkStatus: SinkStatus? { nil }
}

/// Where a partition's state stands: the offsets its checkpoint records and how many messages its marts took in
/// (accepted, duplicates and rejected). The offsets alone do not tell two states apart: with `until`, a
/// partition's checkpoints stay at its first message after that time while later messages up to it are applied.
public struct StatePosition: Hashable, Sendable {
    public var offsets: [String: Int64]
    public var taken: Int64

    public init(offsets: [String: Int64], taken: Int64) {
        self.offsets = offsets
        self.taken = taken
    }

    public init(offsets: [String: Int64], state: MartState) {
        self.init(offsets: offsets, taken: Int64(state.accepted + state.duplicates + state.rejected))
    }
}

/// One input partition as a checkpoint left it, for sinks that mirror the marts. The state is a copy that
/// shares storage with the core's: read it during the call, never keep it (a kept copy makes the core's
/// next change copy the whole state).
public struct CheckpointedPartition {
    public let number: Int32
    public let state: MartState
    /// Where the state stands: its checkpoint's offsets (the next offset of each input topic) and what it took in.
    public let position: StatePosition
    /// The position of the partition's previous checkpoint, or the one it was opened at.
    public let previousPosition: StatePosition
    /// Customers changed between `previousPosition` and `position`.
    public let changedCustomers: [String]
    /// Where the partition's history starts in each input topic it has had a message of (a partial history says
    /// what the marts have not seen), ordered by topic.
    public let history: [HistoryStart]

    /// The checkpoint's offsets.
    public var offsets: [String: Int64] { position.offsets }

    public init(number: Int32, state: MartState, offsets: [String: Int64], previous: StatePosition, changedCustomers: [String],
                history: [HistoryStart] = []) {
        self.history = history.sorted { $0.topic < $1.topic }
        self.number = number
        self.state = state
        position = StatePosition(offsets: offsets, state: state)
        previousPosition = previous
        self.changedCustomers = changedCustomers
    }
}

/// Appends every alert to `alerts.ndjson` in the state directory, where the dashboard reads them.
public final class AlertLogSink: ConsumerSink, @unchecked Sendable {
    let url: URL
    let logger: Logger

    public init(stateDirectory: URL, logger: Logger) {
        url = stateDirectory.appendingPathComponent(AlertLog.fileName)
        self.logger = logger
    }

    public func send(_ outputs: [ConsumerOutput]) throws {
        var text = ""
        for case let .alert(a) in outputs { text += a.json + "\n" }
        guard !text.isEmpty else { return }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            // A file that cannot be created makes the open below throw, which is reported.
            if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
            let h = try FileHandle(forWritingTo: url)
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: Data(text.utf8))
        } catch {
            logger.warning("cannot append to \(url.path): \(error)")
        }
    }
}

/// Posts every alert to an HTTP endpoint (`AlertWebhook` queues them on a thread of its own).
public final class WebhookSink: ConsumerSink {
    public let webhook: AlertWebhook
    public init(_ webhook: AlertWebhook) { self.webhook = webhook }
    public func send(_ outputs: [ConsumerOutput]) throws {
        for case let .alert(a) in outputs { webhook.post(a) }
    }
}

/// The Kafka output topics: dead letters (with their reason and source coordinates), risk changes keyed by
/// customer, alerts keyed by rule. `flush` waits for every message's delivery.
public final class KafkaTopicsSink: ConsumerSink, @unchecked Sendable {
    let producer: KafkaProducer
    let deadLetterTopic: String
    let deadLetterMaxBytes: Int
    let riskTopic: String?
    let alertsTopic: String
    let giveUpWhen: () -> Bool
    let stopped: () -> Bool
    let whileWaiting: () -> Void
    let logger: Logger?
    /// When the last "output queue full" notice was logged (once a minute at most).
    private var fullNoticeAt: ContinuousClock.Instant?

    /// While the output queue is full, `send` waits for room for as long as it takes (consumption waits with it),
    /// calling `whileWaiting` about once a second (the driver refreshes its metrics there), and logs it once a
    /// minute at most. It stops waiting, and throws, as soon as `giveUpWhen` says so, or after 10 s once `stopped`
    /// does (a stop while produce requests keep failing). `giveUpWhen` ends a flush's wait too (the checkpoint
    /// is then given up). A batch whose outputs were not all taken is not covered by any checkpoint
    /// (`ConsumerCore.send`): the next start applies it again.
    public init(producer: KafkaProducer, options: ConsumerOptions, logger: Logger? = nil, giveUpWhen: @escaping () -> Bool = { false },
                stopped: @escaping () -> Bool = { false }, whileWaiting: @escaping () -> Void = {}) {
        self.producer = producer
        self.giveUpWhen = giveUpWhen
        self.stopped = stopped
        self.whileWaiting = whileWaiting
        self.logger = logger
        deadLetterTopic = options.deadLetterTopic
        deadLetterMaxBytes = options.deadLetterMaxBytes
        riskTopic = options.riskTopic
        alertsTopic = options.alertsTopic
    }

    /// How long a stopped consumer waits for room in a full output queue (as long as one flush of a checkpoint).
    static let stoppedWait: Duration = .seconds(10)

    public func send(_ outputs: [ConsumerOutput]) throws {
        try checkDeliveries()
        func send(_ message: ProducerMessage) throws {
            var waitingSince: ContinuousClock.Instant?, nudged = ContinuousClock.now
            var why = ""
            // While the queue is full: warns once a minute, refreshes the metrics, and says when to stop waiting.
            func stopWaiting() -> Bool {
                let now = ContinuousClock.now
                if waitingSince == nil {
                    waitingSince = now
                    if fullNoticeAt.map({ now - $0 >= .seconds(60) }) ?? true {
                        fullNoticeAt = now
                        logger?.warning("output queue full (\(producer.statistics.inFlight) outputs in flight): consumption waits for the cluster to take them")
                    }
                }
                if now - nudged >= .seconds(1) {
                    nudged = now
                    whileWaiting()
                }
                if giveUpWhen() {
                    why = "no broker answers"
                } else if stopped() && now - waitingSince! >= Self.stoppedWait {
                    why = "the cluster took none of them for \(Int(Self.stoppedWait.seconds)) s after the stop"
                }
                return !why.isEmpty
            }
            let taken: Bool
            do {
                // No limit of the producer's own (a year): `stopWaiting` decides.
                taken = try producer.send(message, maxWait: .seconds(366 * 86_400), cancelled: stopWaiting)
            } catch let refused as KafkaError {
                // Refused by the client itself, for good: a topic librdkafka marked failed once the cluster refused a
                // delivery to it (this thread may see that before the delivery report), or a message it cannot
                // send. As lost as a refused delivery.
                throw OutputsLostError(failed: producer.statistics.failed + 1, first: producer.firstDeliveryFailure ?? refused)
            }
            guard taken else {
                throw KafkaError(kind: .timeout, message: "the output queue is full (\(producer.statistics.inFlight) outputs in flight) and \(why): stopped. "
                                 + "No checkpoint covers the outputs not sent: the next start applies their events again and sends them")
            }
        }
        for output in outputs {
            switch output {
            case let .riskChange(r):
                guard let riskTopic else { continue }
                try send(ProducerMessage(topic: riskTopic, key: Array(r.customerID.utf8), value: Array(r.json.utf8),
                                                  timestampMs: r.asOf.ms))
            case let .alert(a):
                try send(ProducerMessage(topic: alertsTopic, key: Array(a.rule.utf8), value: Array(a.json.utf8),
                                                  headers: [KafkaHeader("alert-state", a.state.rawValue)], timestampMs: a.at.ms))
            case let .deadLetter(r, m):
                // A value too large for the output producer goes in truncated, saying so, rather than stopping
                // the consumer; the source coordinates find the original.
                var headers = [KafkaHeader("dlq-reason", r.description), KafkaHeader("source-topic", m.topic),
                               KafkaHeader("source-partition", String(m.partition)), KafkaHeader("source-offset", String(m.offset))]
                var value = Array(m.value)
                if value.count > deadLetterMaxBytes {
                    headers.append(KafkaHeader("dlq-truncated-from", String(value.count)))
                    value = Array(value.prefix(deadLetterMaxBytes))
                }
                try send(ProducerMessage(topic: deadLetterTopic, key: m.key.map { Array($0) }, value: value,
                                                  headers: headers, timestampMs: m.timestampMs))
            }
        }
    }

    public func flush() throws {
        // Short: a flush that times out is tried again (a second later), and while the cluster is away each try
        // holds up a consumer that is stopping or giving up. In slices, so that a checkpoint given up (stopped
        // while no broker answers) ends the wait at once.
        let started = ContinuousClock.now
        while true {
            do {
                try producer.flush(timeout: .milliseconds(250))
                break
            } catch {
                let waited = ContinuousClock.now - started
                if waited >= .seconds(10) || giveUpWhen() {
                    throw KafkaError(kind: .timeout, message: "\(producer.statistics.inFlight) outputs still in flight after \(Int(waited.seconds.rounded())) s")
                }
            }
        }
        try checkDeliveries()
    }

    /// An output the cluster refused for good cannot be sent again from here: no checkpoint may cover it, so the
    /// consumer stops (its outputs producer waits for an unreachable cluster instead of dropping them: see
    /// `KafkaDriver`).
    private func checkDeliveries() throws {
        if let first = producer.firstDeliveryFailure { throw OutputsLostError(failed: producer.statistics.failed, first: first) }
    }
}

/// A sink error that retrying cannot mend: the consumer stops with it, and its last checkpoint stands.
public protocol FatalSinkError: Error {}

/// Output messages (risk changes, alerts, dead letters) that the cluster refused for good.
public struct OutputsLostError: FatalSinkError, CustomStringConvertible {
    public var failed: Int
    public var first: KafkaError
    public var description: String {
        "\(failed) output message\(failed == 1 ? "" : "s") (risk changes, alerts, dead letters) could not be delivered, the first: \(first). "
            + "No checkpoint covers them: the next start applies their events again and sends them"
    }
}
