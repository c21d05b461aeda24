import CRdKafka
import Foundation
import Logging
import Synchronization

/// A Kafka producer: idempotent, lz4-compressed and murmur2-partitioned unless configured otherwise.
///
/// `send` enqueues into librdkafka's bounded queue (`queue.buffering.max.messages`); when that is full it
/// waits for deliveries instead of growing memory (backpressure). Delivery reports are served on a
/// dedicated thread and surfaced through `onDelivery` and the counters.
public final class KafkaProducer: Sendable {
    /// Defaults applied under whatever the user passes.
    public static let defaults: [String: String] = [
        "enable.idempotence": "true",
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        "linger.ms": "5",
        "queue.buffering.max.messages": "100000",
        "batch.num.messages": "10000",
        "message.timeout.ms": "300000",
    ]

    private let client: NativeClient
    private let topics = Mutex<TopicHandles>(TopicHandles())

    /// Topic handles by name, plus the last one used: producers mostly send to one topic in a row.
    struct TopicHandles {
        var handles: [String: TopicHandle] = [:]
        var last: TopicHandle? = nil
    }
    private let poller: PollThread
    private let logger: Logger
    private let enqueued = Atomic<Int>(0)
    private let backpressureWaits = Atomic<Int>(0)

    /// - Parameter onDelivery: called once per message, on the thread serving delivery reports (the producer's poll
    ///   thread, or one calling `send`, which serves them now and then); keep it short.
    /// - Parameter onLatency: called on the same thread for each delivered message with its latency in
    ///   microseconds, from `send` to the broker's acknowledgement (librdkafka's `rd_kafka_message_latency`).
    public init(config: KafkaConfig, logger: Logger,
                onDelivery: (@Sendable (DeliveryReport) -> Void)? = nil,
                onLatency: (@Sendable (_ microseconds: Int64) -> Void)? = nil) throws {
        let config = config.withDefaults(Self.defaults)
        let context = ClientContext(logger: logger, cluster: config["bootstrap.servers"], onDelivery: onDelivery, onLatency: onLatency)
        self.logger = logger
        self.client = try NativeClient(type: RD_KAFKA_PRODUCER, config: config, context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        }
        let client = self.client
        let delivery = client.context.delivery
        // Polls without blocking inside librdkafka: a thread parked in rd_kafka_poll(timeout) is woken for
        // every delivery batch, which costs more than a short sleep when nothing was served (≤ 1 ms latency).
        self.poller = PollThread(name: "kafka-producer-poll") {
            if delivery.batchSenders.load(ordering: .relaxed) > 0 || rd_kafka_poll(client.handle, 0) == 0 { usleep(1000) }
        }
    }

    deinit {
        poller.stop()
    }

    public struct Statistics: Sendable, Equatable {
        public var enqueued: Int
        public var delivered: Int
        public var failed: Int
        /// Times `send` had to wait for the in-flight queue to drain.
        public var backpressureWaits: Int
        /// Messages accepted but not yet acknowledged or failed.
        public var inFlight: Int { enqueued - delivered - failed }
    }

    public var statistics: Statistics {
        let d = client.context.delivery
        return Statistics(enqueued: enqueued.load(ordering: .relaxed),
                          delivered: d.delivered.load(ordering: .relaxed),
                          failed: d.failed.load(ordering: .relaxed),
                          backpressureWaits: backpressureWaits.load(ordering: .relaxed))
    }

    /// The first delivery failure, if any message failed.
    public var firstDeliveryFailure: KafkaError? {
        client.context.delivery.firstFailure.withLock { $0 }
    }

    /// Since when no broker of the cluster answers; nil while it does (a delivery ends it).
    public var unreachableSince: ContinuousClock.Instant? { client.context.cluster.unreachableSince.withLock { $0 } }

    /// The most recent client-level error (e.g. all brokers down), for progress reports.
    public var lastClientError: KafkaError? { client.context.lastError.withLock { $0 } }

    /// Enqueues a message. Blocks (up to `maxWait`) while the in-flight queue is full, so call it from a
    /// thread of your own, not from Swift's cooperative pool; `sendAsync` is the pool-friendly form.
    /// `cancelled`: asked while the queue is full; when it says so, the message is not sent and `send` returns
    /// false (a command stopped by Ctrl-C while the cluster is away stops waiting at once). True when enqueued.
    @discardableResult
    public func send(_ message: ProducerMessage, token: UInt = 0, maxWait: Duration = .seconds(300), cancelled: () -> Bool = { false }) throws -> Bool {
        let topic = try topicHandle(message.topic)
        guard try enqueueWaiting(topic: message.topic, maxWait: maxWait, cancelled: cancelled, { enqueue(message, topic: topic, token: token) }) else {
            return false
        }
        // Serving delivery reports on the sending thread now and then is cheaper than waking the poll thread
        // for each batch of them.
        _ = rd_kafka_poll(client.handle, 0)
        return true
    }

    /// Sends every message of `batch`, in order, as `send` sends one: message `i` goes to topic
    /// `topics[batch.records[i].topic]` with the headers `headers[batch.records[i].headers]`. Topic handles
    /// are looked up and header sets built once per call, and delivery reports served by this thread once per
    /// 256 messages (the poll thread leaves them alone meanwhile). Returns when all are enqueued; throws at the
    /// first message that could not be (those before it are enqueued). Returns how many were enqueued: fewer than
    /// the batch's when `cancelled` said so while the queue was full (as in `send(_:token:maxWait:cancelled:)`).
    @discardableResult
    public func send(_ batch: PackedMessages, topics: [String], headers: [[KafkaHeader]], maxWait: Duration = .seconds(300),
                     cancelled: () -> Bool = { false }) throws -> Int {
        let handles = try topics.map { try topicHandle($0) }
        let senders = client.context.delivery
        senders.batchSenders.add(1, ordering: .relaxed)
        defer { senders.batchSenders.subtract(1, ordering: .relaxed) }
        // Each header set is built once as a librdkafka header list and copied for each message
        // (`rd_kafka_headers_copy`), rather than built from Swift strings and arrays per message.
        let templates = headers.map(makeHeaders)
        defer { for case let t? in templates { rd_kafka_headers_destroy(t) } }
        let enqueued = try withExtendedLifetime(handles) {
            let rkts = handles.map(\.handle)
            return try batch.bytes.withUnsafeBytes { bytes -> Int in
                for (i, r) in batch.records.enumerated() {
                    guard rkts.indices.contains(r.topic), templates.indices.contains(r.headers),
                          0 <= r.keyStart, r.keyStart <= r.valueStart, r.valueStart <= r.end, r.end <= bytes.count
                    else { throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, context: "packed message \(i) is out of range") }
                    let key = UnsafeRawBufferPointer(rebasing: bytes[r.keyStart..<r.valueStart])
                    let value = UnsafeRawBufferPointer(rebasing: bytes[r.valueStart..<r.end])
                    let template = templates[r.headers], rkt = rkts[r.topic]
                    let taken = try enqueueWaiting(topic: topics[r.topic], maxWait: maxWait, cancelled: cancelled) {
                        uc_produce(client.handle, rkt, RD_KAFKA_PARTITION_UA, key.baseAddress, key.count,
                                   value.baseAddress, value.count, template.map { rd_kafka_headers_copy($0) },
                                   r.timestampMs, nil)
                    }
                    if !taken { return i }
                    if i & 255 == 255 { _ = rd_kafka_poll(client.handle, 0) }
                }
                return batch.records.count
            }
        }
        _ = rd_kafka_poll(client.handle, 0)
        return enqueued
    }

    /// Runs `attempt` until librdkafka takes the message; while its in-flight queue is full, serves delivery
    /// reports (which frees queue space sooner than waiting for the poll thread) for up to `maxWait`.
    /// False when `cancelled` said so while the queue was full (the message was not enqueued).
    private func enqueueWaiting(topic: @autoclosure () -> String, maxWait: Duration, cancelled: () -> Bool = { false },
                                _ attempt: () -> rd_kafka_resp_err_t) throws -> Bool {
        var deadline: ContinuousClock.Instant? = nil
        while true {
            let err = attempt()
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                enqueued.add(1, ordering: .relaxed)
                return true
            }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { throw KafkaError(err, context: "produce to \(topic())") }
            if cancelled() { return false }
            backpressureWaits.add(1, ordering: .relaxed)
            let limit = deadline ?? ContinuousClock.now + maxWait
            deadline = limit
            if ContinuousClock.now >= limit {
                throw KafkaError(err, context: "produce to \(topic()): in-flight queue still full after \(maxWait)")
            }
            _ = rd_kafka_poll(client.handle, 5)
        }
    }

    /// Like `send`, but waits without blocking a thread when the queue is full.
    public func sendAsync(_ message: ProducerMessage, token: UInt = 0) async throws {
        let topic = try topicHandle(message.topic)
        while true {
            let err = enqueue(message, topic: topic, token: token)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                enqueued.add(1, ordering: .relaxed)
                return
            }
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                throw KafkaError(err, context: "produce to \(message.topic)")
            }
            backpressureWaits.add(1, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Waits until every enqueued message is delivered or failed. Blocking: see `send`.
    public func flush(timeout: Duration = .seconds(60)) throws {
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let err = rd_kafka_flush(client.handle, ms)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context: "flush: \(rd_kafka_outq_len(client.handle)) messages still in flight after \(timeout)")
        }
        // Deliveries are reported by the callback before flush returns.
    }

    /// Drops every message not yet delivered (queued or in flight) and serves their delivery reports, which count
    /// them as failed; returns how many there were. For a caller that gives up on them knowingly (and sends them
    /// again later), so that closing the producer does not warn of messages still in its queue.
    @discardableResult
    public func abandonUndelivered() -> Int {
        let count = Int(rd_kafka_outq_len(client.handle))
        guard count > 0 else { return 0 }
        _ = rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        _ = rd_kafka_flush(client.handle, 0)  // serves the purged messages' reports
        return count
    }

    /// Flush without blocking the cooperative pool.
    public func flushAsync(timeout: Duration = .seconds(60)) async throws {
        try await runBlocking { try self.flush(timeout: timeout) }
    }

    private func enqueue(_ message: ProducerMessage, topic: TopicHandle, token: UInt) -> rd_kafka_resp_err_t {
        message.value.withUnsafeBytes { value in
            if let key = message.key {
                return key.withUnsafeBytes { k in
                    enqueue(key: k, value: value, headers: message.headers, topic: topic,
                            partition: message.partition ?? RD_KAFKA_PARTITION_UA, timestampMs: message.timestampMs ?? 0, token: token)
                }
            }
            return enqueue(key: nil, value: value, headers: message.headers, topic: topic,
                           partition: message.partition ?? RD_KAFKA_PARTITION_UA, timestampMs: message.timestampMs ?? 0, token: token)
        }
    }

    private func enqueue(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers list: [KafkaHeader],
                         topic: TopicHandle, partition: Int32, timestampMs: Int64, token: UInt) -> rd_kafka_resp_err_t {
        let headers = makeHeaders(list)
        let opaque = UnsafeMutableRawPointer(bitPattern: token)
        return uc_produce(client.handle, topic.handle, partition, key?.baseAddress, key?.count ?? 0,
                          value.baseAddress, value.count, headers, timestampMs, opaque)
    }

    /// A librdkafka header list holding `list`, or nil when it is empty. The caller owns it.
    private func makeHeaders(_ list: [KafkaHeader]) -> OpaquePointer? {
        guard !list.isEmpty else { return nil }
        let headers = rd_kafka_headers_new(list.count)
        for header in list {
            header.value.withUnsafeBytes { v in
                _ = rd_kafka_header_add(headers, header.name, -1, v.baseAddress, v.count)
            }
        }
        return headers
    }

    private func topicHandle(_ name: String) throws -> TopicHandle {
        try topics.withLock { topics in
            if let last = topics.last, last.name == name { return last }
            if let handle = topics.handles[name] {
                topics.last = handle
                return handle
            }
            let handle = try TopicHandle(client: client, name: name)
            topics.handles[name] = handle
            topics.last = handle
            return handle
        }
    }
}

/// Owns one `rd_kafka_topic_t`; keeps its client alive so that the topic is destroyed first.
final class TopicHandle: @unchecked Sendable {
    // @unchecked: rd_kafka_topic_t is immutable after creation and librdkafka allows its use from any thread.
    let handle: OpaquePointer
    let name: String
    private let client: NativeClient

    init(client: NativeClient, name: String) throws {
        guard let handle = rd_kafka_topic_new(client.handle, name, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic \(name)")
        }
        self.client = client
        self.handle = handle
        self.name = name
    }

    deinit { rd_kafka_topic_destroy(handle) }
}

private let deliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    _, message, opaque in
    guard let message, let opaque else { return }
    // The context outlives the client (NativeClient holds it until rd_kafka_destroy returns), so it is borrowed
    // here without a retain: this runs once per message, on two threads, and a retain and release of one shared
    // object from both was a contended atomic pair per message.
    Unmanaged<ClientContext>.fromOpaque(opaque)._withUnsafeGuaranteedRef { context in
        let msg = message.pointee
        let delivered = msg.err == RD_KAFKA_RESP_ERR_NO_ERROR
        if delivered {
            context.delivery.delivered.add(1, ordering: .relaxed)
            if context.cluster.unreachable.load(ordering: .relaxed) { context.markReachable() }
            if let onLatency = context.onLatency {
                let latency = rd_kafka_message_latency(message)
                if latency >= 0 { onLatency(latency) }
            }
        } else {
            context.delivery.failed.add(1, ordering: .relaxed)
            let error = KafkaError(msg.err, context: "delivery failed")
            context.delivery.firstFailure.withLock { if $0 == nil { $0 = error } }
        }
        guard let onDelivery = context.onDelivery else { return }
        let result: Result<Int64, KafkaError> = delivered ? .success(msg.offset) : .failure(KafkaError(msg.err, context: "delivery failed"))
        let topic = msg.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        onDelivery(DeliveryReport(topic: topic, partition: msg.partition, token: uc_message_token(message), result: result))
    }
}
