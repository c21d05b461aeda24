import CRdKafka
import Logging
import Synchronization

/// librdkafka's mock cluster: a real Kafka-protocol server on loopback, for development, tests and the demo.
///
/// Facts of librdkafka 2.0.2's mock cluster: ports are chosen by the kernel; each partition keeps only
/// about 5 MiB of message data and drops the oldest; ListOffsets by timestamp is not implemented;
/// transactions are accepted but not applied; the first group join takes about 3 s.
public final class EmbeddedBroker: @unchecked Sendable {
    // @unchecked: the mock cluster runs its own thread and its API is documented as thread safe;
    // both pointers are set once in init and freed once in deinit.
    private let owner: OpaquePointer
    private let cluster: OpaquePointer
    public let brokerCount: Int
    public let bootstrapServers: String

    public init(brokers: Int = 1, logger: Logger) throws {
        precondition(brokers >= 1)
        let context = ClientContext(logger: logger)
        let config = KafkaConfig(["log_level": "3"])
        let conf = try config.makeNativeConf()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(context).toOpaque())
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(kind: .configuration, message: "embedded broker: cannot create owner handle")
        }
        guard let cluster = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(kind: .librdkafka, message: "embedded broker: rd_kafka_mock_cluster_new failed")
        }
        self.owner = rk
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        Self.running.withLock { _ = $0.insert(bootstrapServers) }
    }

    deinit {
        Self.running.withLock { _ = $0.remove(bootstrapServers) }
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(owner)
    }

    /// Bootstrap addresses of the embedded brokers alive in this process.
    private static let running = Mutex<Set<String>>([])

    /// Whether `config` reaches an embedded broker: one alive in this process, or one that `config` says it
    /// points at (`KafkaConfig.pointsAtEmbeddedBroker`, set by whoever read its address file).
    public static func serves(_ config: KafkaConfig) -> Bool {
        if config.pointsAtEmbeddedBroker { return true }
        guard let servers = config["bootstrap.servers"] else { return false }
        return running.withLock { $0.contains(servers) }
    }

    /// The embedded broker answers a fetch only when `fetch.wait.max.ms` (librdkafka's default 500 ms) expires,
    /// where Kafka answers as soon as data arrives. Clients of an embedded broker set it to this unless the user
    /// did, so replaying and consuming run at the pipeline's own speed.
    public static let fetchWaitMs = "10"

    /// When the last member leaves a group, the embedded broker waits the session timeout it had, less a second,
    /// before it gives a new member partitions (librdkafka's default, 45 s: every restart of a consumer waited
    /// that long). Consumers of an embedded broker set this session timeout, with heartbeats to match, unless
    /// the user set either; heartbeats are sent by librdkafka's own thread, so a busy consumer keeps its session.
    public static let sessionTimeoutMs = "6000"
    public static let heartbeatIntervalMs = "500"

    /// `config` with `fetch.wait.max.ms` shortened, and (for a consumer of a group, `group`) the group session as
    /// above, when it reaches an embedded broker and the user did not set them; also what it set (`key=value`,
    /// empty when nothing), for the log.
    public static func tuned(_ config: KafkaConfig, group: Bool = true) -> (KafkaConfig, changed: [String]) {
        guard serves(config) else { return (config, []) }
        var copy = config
        var changed: [String] = []
        func set(_ key: String, _ value: String) {
            copy[key] = value
            changed.append("\(key)=\(value)")
        }
        if config["fetch.wait.max.ms"] == nil { set("fetch.wait.max.ms", fetchWaitMs) }
        if group && config["session.timeout.ms"] == nil && config["heartbeat.interval.ms"] == nil {
            set("session.timeout.ms", sessionTimeoutMs)
            set("heartbeat.interval.ms", heartbeatIntervalMs)
        }
        return (copy, changed)
    }

    /// The log line that says what `tuned` set.
    public static func tunedNotice(_ changed: [String]) -> String {
        "embedded broker: \(changed.joined(separator: " ")) (set \(changed.count == 1 ? "it" : "them") with -X to override)"
    }

    /// Creates a topic with `partitions` partitions (replicated on up to `replicationFactor` brokers).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(min(replicationFactor, brokerCount)))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "embedded broker: create topic \(name)") }
    }

    // MARK: Fault injection

    /// Takes broker `id` (1-based) off the network: its connections close and new ones are refused.
    public func setBrokerDown(_ id: Int32) throws {
        try check(rd_kafka_mock_broker_set_down(cluster, id), "broker \(id) down")
    }

    public func setBrokerUp(_ id: Int32) throws {
        try check(rd_kafka_mock_broker_set_up(cluster, id), "broker \(id) up")
    }

    /// Adds round-trip latency to every request broker `id` answers.
    public func setLatency(broker id: Int32, milliseconds: Int) throws {
        try check(rd_kafka_mock_broker_set_rtt(cluster, id, Int32(milliseconds)), "broker \(id) latency")
    }

    /// The next requests of `api` get these error codes, one per request, in order.
    public func pushRequestErrors(_ api: KafkaAPIKey, _ codes: [Int32]) {
        let errs = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        errs.withUnsafeBufferPointer { buf in
            rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, buf.count, buf.baseAddress)
        }
    }

    public func clearRequestErrors(_ api: KafkaAPIKey) {
        rd_kafka_mock_clear_request_errors(cluster, api.rawValue)
    }

    private func check(_ err: rd_kafka_resp_err_t, _ what: String) throws {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "embedded broker: \(what)") }
    }
}
