import Events
import Foundation
import Telemetry
import Kafka
import Marts

/// Observes the consumer from the inside (load tests): every message once applied to the marts (or
/// rejected), and every checkpoint's duration. Called on the consuming thread: keep it short.
public protocol ConsumerProbe: AnyObject, Sendable {
    func applied(_ message: KafkaMessage)
    func checkpointed(seconds: Double)
    /// The group gave the consumer partitions (called at each assignment that gives it some).
    func assigned()
    /// A checkpoint write failed (it is retried, or given up).
    func checkpointFailed()
}

extension ConsumerProbe {
    public func assigned() {}
    public func checkpointFailed() {}
}

/// How the consumer runs: what it reads, when it checkpoints, what it sends where. Every field has a
/// documented default; `MartsConsumerCommand` maps the command line onto it.
public struct ConsumerOptions: Sendable {
    public var stateDirectory: URL
    /// The consumer group's name unless given (`--group`).
    public static let defaultGroup = "undercurrent-marts"
    public var group = ConsumerOptions.defaultGroup
    public var topics: [InputTopic: String] = Topics.inputs(prefixedBy: "")
    public var deadLetterTopic = Topics.deadLetter
    /// Larger values go to the dead-letter topic truncated to this size (with `dlq-truncated-from`).
    public var deadLetterMaxBytes = 512 * 1024
    public var checkpointEvents = 50_000
    public var checkpointInterval: Duration = .seconds(2)
    /// Discard checkpoints and start from the earliest offsets.
    public var rebuild = false
    /// Ignore events after this time (as-of analysis).
    public var until: Timestamp?
    /// Stop after this long without messages (for batch runs, tests and the demo).
    public var exitWhenIdle: Duration?
    /// With `exitWhenIdle`: how long at least a run waits for a cluster no broker of which answers before it was
    /// ever given partitions; then it fails (a mistyped address hung the run). A cluster still starting gets this.
    public var unreachableGrace: Duration = .seconds(30)
    /// How often progress is logged and metrics refreshed.
    public var reportInterval: Duration = .seconds(5)
    /// Feed an archive whose gzip stream is cut off (its complete lines); otherwise such an archive is an error
    /// once its complete lines are applied and checkpointed.
    public var allowTruncatedArchive = false
    /// Where to write the metrics (Prometheus text format) at each report, atomically.
    public var metricsFile: URL?
    /// The process's metrics, where the consumer's instruments go (served on `/metrics` by the executables).
    public var metrics = MetricsRegistry()
    /// Failure-spike alert rules; nil disables alerting.
    public var alertRules: AlertRules?
    public var alertsTopic = Topics.alerts
    /// Optional HTTP endpoint that receives each alert as a JSON POST.
    public var alertWebhook: AlertWebhook?
    /// Changelog of risk segment changes, keyed by customer; nil disables it.
    public var riskTopic: String? = Topics.customerRisk
    /// Start partitions without a checkpoint at this time (ListOffsets by timestamp); messages with an
    /// earlier timestamp are skipped either way.
    public var startTime: Timestamp?
    /// Where these topic-partitions start when they have no checkpoint (before `startTime`'s lookup; the earliest
    /// offset otherwise). A load test starts its topics at their ends, past the messages of earlier runs.
    public var startOffsets: [TopicPartition: Int64] = [:]
    /// How long alerting waits for an assigned payments partition that sends nothing (an empty one).
    public var alertSourceWait: Duration = .seconds(10)
    /// Sees every applied message and every checkpoint (load tests).
    public var probe: ConsumerProbe?
    /// After this long without messages, the brokers are asked whether any partition has messages that
    /// never came (a stalled fetch), and such partitions are restarted; also done before `exitWhenIdle`.
    public var stallCheckInterval: Duration = .seconds(15)
    /// Customers kept unpacked per partition (see `CustomerTable`); nil: the default, 8,192.
    public var hotCustomers: Int?
    /// Threads that apply a polled batch, each taking the next partition's messages as it comes free (each
    /// partition on one thread).
    public var threads = min(2, ProcessInfo.processInfo.activeProcessorCount)
    /// Most messages taken by one poll (a batch split over `threads` by partition).
    public var pollBatch = 20_000
    /// More places the consumer's outputs go to, after the built-in ones (see `ConsumerSink`).
    public var sinks: [any ConsumerSink] = []
    public init(stateDirectory: URL) { self.stateDirectory = stateDirectory }

    /// The name of the payments topic as configured.
    var paymentsTopic: String { topics[.payments] ?? Topics.payments }
}
