import CRdKafka
import Foundation
import Logging
import Synchronization

/// What the application does when the group hands it partitions or takes them away.
///
/// `onAssign` returns the offset to start each assigned partition at: offsets are kept outside Kafka
/// (in checkpoints), so the group's committed offsets are not used. A partition missing from the
/// result starts at `.stored` (the committed offset, else `auto.offset.reset`).
/// Both run on the thread that calls `poll`, before that call returns.
public struct RebalanceHandler: Sendable {
    public var onAssign: @Sendable ([TopicPartition]) -> [TopicPartition: KafkaOffset]
    public var onRevoke: @Sendable ([TopicPartition]) -> Void

    public init(onAssign: @escaping @Sendable ([TopicPartition]) -> [TopicPartition: KafkaOffset],
                onRevoke: @escaping @Sendable ([TopicPartition]) -> Void = { _ in }) {
        self.onAssign = onAssign
        self.onRevoke = onRevoke
    }
}

/// A Kafka consumer, in a group (`subscribe`) or with a manual assignment (`assign`).
///
/// `enable.auto.commit` is off and `auto.offset.reset` defaults to `error`, so an offset the broker no
/// longer holds is reported (`KafkaError.Kind.offsetOutOfRange`, with the lost range) instead of being
/// skipped silently. `poll` blocks up to its timeout: call it from a thread of your own.
public final class KafkaConsumer: Sendable {
    public static let defaults: [String: String] = [
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "error",
        "enable.partition.eof": "false",
        "partition.assignment.strategy": "range,roundrobin",
    ]

    private let client: NativeClient
    private let queue: QueueHandle
    private let logger: Logger
    /// An error found mid-batch, thrown by the next `poll` after the good messages were returned.
    private let pendingError = Mutex<KafkaError?>(nil)
    private let closed = Atomic<Bool>(false)
    private let subscribed = Atomic<Bool>(false)

    public init(config: KafkaConfig, logger: Logger, rebalance: RebalanceHandler? = nil) throws {
        var config = config.withDefaults(Self.defaults)
        if config["group.id"] == nil { config["group.id"] = "undercurrent-\(UUID().uuidString.prefix(8))" }
        let context = ClientContext(logger: logger, cluster: config["bootstrap.servers"])
        if let rebalance { context.rebalance.withLock { $0 = RebalanceState(handler: rebalance) } }
        self.logger = logger
        self.client = try NativeClient(type: RD_KAFKA_CONSUMER, config: config, context: context) { conf in
            if rebalance != nil { rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback) }
        }
        rd_kafka_poll_set_consumer(client.handle)
        guard let queue = rd_kafka_queue_get_consumer(client.handle) else {
            throw KafkaError(kind: .librdkafka, message: "consumer queue unavailable")
        }
        self.queue = QueueHandle(queue, client: client)
    }

    deinit { close() }

    /// Joins the group for these topics.
    public func subscribe(_ topics: [String]) throws {
        let list = PartitionList(topics.map { TopicPartition($0, RD_KAFKA_PARTITION_UA) })
        let err = list.withPointer { rd_kafka_subscribe(client.handle, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "subscribe \(topics)") }
        subscribed.store(true, ordering: .relaxed)
    }

    /// Assigns partitions by hand, each at its start offset (no group rebalancing).
    public func assign(_ partitions: [TopicPartition: KafkaOffset]) throws {
        let sorted = partitions.sorted { $0.key < $1.key }
        let list = PartitionList(sorted.map(\.key), offsets: sorted.map(\.value))
        let err = list.withPointer { rd_kafka_assign(client.handle, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assign") }
    }

    /// Moves an assigned partition to `offset`. The next fetch starts there.
    public func seek(_ partition: TopicPartition, to offset: KafkaOffset, timeout: Duration = .seconds(5)) throws {
        let list = PartitionList([partition], offsets: [offset])
        let error = list.withPointer { rd_kafka_seek_partitions(client.handle, $0, Self.ms(timeout)) }
        if let error {
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            throw KafkaError(code, context: "seek \(partition) to \(offset)")
        }
        if let failed = list.entries().first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError(failed.error, context: "seek \(partition) to \(offset)")
        }
    }

    /// The current assignment.
    public func assignment() throws -> [TopicPartition] {
        var raw: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
        let err = rd_kafka_assignment(client.handle, &raw)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assignment") }
        guard let raw else { return [] }
        let list = PartitionList(adopting: raw)
        return list.entries().map(\.partition).sorted()
    }

    /// Commits `offsets` (the next offset to read of each partition) to the group, without waiting for the
    /// answer unless `wait`, so that the group's lag shows in `kafka-consumer-groups --describe`, Burrow or kafka_exporter.
    /// Where a partition starts is still the application's to say (see `RebalanceHandler`).
    public func commit(_ offsets: [TopicPartition: Int64], wait: Bool = false) throws {
        guard !offsets.isEmpty else { return }
        let tps = offsets.keys.sorted()
        let list = PartitionList(tps, offsets: tps.map { KafkaOffset(offsets[$0]!) })
        let err = list.withPointer { rd_kafka_commit(client.handle, $0, wait ? 0 : 1) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "commit") }
    }

    /// The group's committed offsets of `partitions`, asked of the group coordinator; partitions without a
    /// committed offset are left out.
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) throws -> [TopicPartition: Int64] {
        let list = PartitionList(partitions)
        let err = list.withPointer { rd_kafka_committed(client.handle, $0, Int32(timeout.components.seconds * 1000)) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "committed offsets") }
        var out: [TopicPartition: Int64] = [:]
        for e in list.entries() where e.offset >= 0 && e.error == RD_KAFKA_RESP_ERR_NO_ERROR { out[e.partition] = e.offset }
        return out
    }

    /// Messages behind the end of each assigned partition: high watermark minus the consume position, from
    /// the watermarks librdkafka caches with each fetch (no request to the broker). Partitions without a
    /// position yet are left out.
    public func lag() -> [TopicPartition: Int64] {
        positions().mapValues { max(0, $0.end - $0.position) }
    }

    /// The consume position of each assigned partition that has one: the offset after the last message handed
    /// out, or after a transaction marker read since (librdkafka steps the position over markers, which are never
    /// handed out).
    public func consumedPositions() -> [TopicPartition: Int64] {
        var raw: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
        guard rd_kafka_assignment(client.handle, &raw) == RD_KAFKA_RESP_ERR_NO_ERROR, let raw else { return [:] }
        let list = PartitionList(adopting: raw)
        _ = list.withPointer { rd_kafka_position(client.handle, $0) }
        var out: [TopicPartition: Int64] = [:]
        for e in list.entries() where e.offset >= 0 { out[e.partition] = e.offset }
        return out
    }

    /// The consume position (next offset to read) and the end (high watermark) of each assigned partition,
    /// as `lag()` reads them.
    public func positions() -> [TopicPartition: (position: Int64, end: Int64)] {
        var out: [TopicPartition: (position: Int64, end: Int64)] = [:]
        for (tp, position) in consumedPositions() {
            var low: Int64 = -1, high: Int64 = -1
            guard rd_kafka_get_watermark_offsets(client.handle, tp.topic, tp.partition, &low, &high)
                    == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { continue }
            out[tp] = (position, high)
        }
        return out
    }

    /// The low and high watermarks of these partitions as librdkafka cached them from its fetches (no request to
    /// the broker); partitions without both yet are left out.
    public func cachedWatermarks(_ partitions: [TopicPartition]) -> [TopicPartition: (low: Int64, high: Int64)] {
        var out: [TopicPartition: (low: Int64, high: Int64)] = [:]
        for tp in partitions {
            var low: Int64 = -1, high: Int64 = -1
            guard rd_kafka_get_watermark_offsets(client.handle, tp.topic, tp.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  low >= 0, high >= 0 else { continue }
            out[tp] = (low, high)
        }
        return out
    }

    /// The low and high watermarks of these partitions, asked of their leaders now (one blocking request per
    /// partition; `lag()` uses the cached ones). `timeout` bounds the whole call: once it is spent (a leader
    /// down), the remaining partitions are left out, as are those whose leader answered with an error.
    public func queryWatermarks(_ partitions: [TopicPartition], timeout: Duration = .seconds(2)) -> [TopicPartition: (low: Int64, high: Int64)] {
        var out: [TopicPartition: (low: Int64, high: Int64)] = [:]
        let deadline = ContinuousClock.now + timeout
        for tp in partitions {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            var low: Int64 = -1, high: Int64 = -1
            guard rd_kafka_query_watermark_offsets(client.handle, tp.topic, tp.partition, &low, &high, Self.ms(left))
                    == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { continue }
            out[tp] = (low, high)
        }
        return out
    }

    /// Up to `maxMessages` messages, waiting at most `timeout` for the first. Serves rebalance callbacks.
    /// Transient broker errors are logged and counted, not thrown: librdkafka retries them itself.
    /// `includeHeaders: false` skips parsing headers, for callers that do not read them.
    public func poll(maxMessages: Int = 1000, timeout: Duration = .milliseconds(100),
                     includeHeaders: Bool = true) throws -> [KafkaMessage] {
        if let error = pendingError.withLock({ e -> KafkaError? in defer { e = nil }; return e }) { throw error }
        guard !closed.load(ordering: .relaxed) else { throw KafkaError(kind: .closed, message: "consumer is closed") }
        var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: maxMessages)
        // rd_kafka_consume_batch_queue with a timeout waits for a *full* batch; take what is queued now,
        // else wait for one message and then take what came with it, so a quiet topic costs no latency.
        let handle = queue.handle
        let count = buffer.withUnsafeMutableBufferPointer { buf -> Int in
            let now = rd_kafka_consume_batch_queue(handle, 0, buf.baseAddress, maxMessages)
            if now != 0 { return now }
            let first = rd_kafka_consume_batch_queue(handle, Self.ms(timeout), buf.baseAddress, 1)
            guard first == 1, maxMessages > 1 else { return first }
            let rest = rd_kafka_consume_batch_queue(handle, 0, buf.baseAddress! + 1, maxMessages - 1)
            return rest < 0 ? 1 : 1 + rest
        }
        if count < 0 { throw KafkaError(rd_kafka_last_error(), context: "consume") }
        guard count > 0 else { return [] }
        // Not a sign that the cluster answers: these may have been fetched before it went away. `probeCluster`
        // and deliveries tell.
        defer { for i in 0..<count { if let raw = buffer[i] { rd_kafka_message_destroy(raw) } } }

        // Every good message of the batch is returned (librdkafka has moved past them); the first fatal
        // error is thrown by this call when there is none, else by the next one.
        var good = 0
        var totalBytes = 0
        var firstError: KafkaError? = nil
        for i in 0..<count {
            guard let raw = buffer[i] else { continue }
            let msg = raw.pointee
            if msg.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                good += 1
                totalBytes += msg.len + msg.key_len
                continue
            }
            if let error = classify(raw), firstError == nil { firstError = error }
        }

        var bytes = [UInt8]()
        bytes.reserveCapacity(totalBytes)
        var spans: [(key: Range<Int>?, value: Range<Int>)] = []
        spans.reserveCapacity(good)
        var accepted: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        accepted.reserveCapacity(good)
        for i in 0..<count {
            guard let raw = buffer[i] else { continue }
            let msg = raw.pointee
            if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            var keyRange: Range<Int>? = nil
            if let key = msg.key {
                let start = bytes.count
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: key, count: msg.key_len))
                keyRange = start..<bytes.count
            }
            let start = bytes.count
            if let payload = msg.payload {
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: payload, count: msg.len))
            }
            spans.append((keyRange, start..<bytes.count))
            accepted.append(raw)
        }

        var messages: [KafkaMessage] = []
        messages.reserveCapacity(accepted.count)
        topicNames.withLock { topicCache in
            for (i, raw) in accepted.enumerated() {
                let msg = raw.pointee
                var topic = ""
                if let rkt = msg.rkt {
                    let address = Int(bitPattern: UnsafeRawPointer(rkt))
                    if let cached = topicCache[address] { topic = cached } else {
                        topic = String(cString: rd_kafka_topic_name(rkt))
                        topicCache[address] = topic
                    }
                }
                var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                let ts = rd_kafka_message_timestamp(raw, &tsType)
                messages.append(KafkaMessage(
                    topic: topic, partition: msg.partition, offset: msg.offset,
                    key: spans[i].key.map { bytes[$0] }, value: bytes[spans[i].value],
                    headers: includeHeaders ? Self.headers(of: raw) : [],
                    timestampMs: tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts))
            }
        }
        if let firstError {
            if messages.isEmpty { throw firstError }
            pendingError.withLock { $0 = firstError }
        }
        return messages
    }

    /// `poll` without blocking the cooperative pool.
    public func pollAsync(maxMessages: Int = 1000, timeout: Duration = .milliseconds(100)) async throws -> [KafkaMessage] {
        try await runBlocking { try self.poll(maxMessages: maxMessages, timeout: timeout) }
    }

    /// How long `close` waits for the group's coordinator before it leaves without its answer.
    public static let closeTimeout: Duration = .seconds(15)

    /// Leaves the group (revoking partitions through the handler) and stops fetching. Waits for the group's
    /// coordinator for `timeout` at most: librdkafka's own close can wait for ever on a broker that stops
    /// answering without closing its connections (its LeaveGroup request then waits for a reconnection that
    /// never completes), and a process stopped then would never end. Past the timeout the client is destroyed
    /// without a consumer close; the group notices the member gone when its session times out.
    public func close(timeout: Duration = closeTimeout) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        leaveGroupBeforeClosing()
        // The close runs in librdkafka's background; its events (a revoke) come on the consumer queue, served here.
        if let error = rd_kafka_consumer_close_queue(client.handle, queue.handle) {
            let code = rd_kafka_error_code(error)
            if code != RD_KAFKA_RESP_ERR__UNKNOWN_GROUP {
                logger.warning("consumer close: \(String(cString: rd_kafka_error_string(error)))")
            }
            rd_kafka_error_destroy(error)
            return
        }
        let deadline = ContinuousClock.now + timeout
        var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: 256)
        let handle = queue.handle
        while rd_kafka_consumer_closed(client.handle) == 0 {
            guard ContinuousClock.now < deadline else {
                client.destroyFlags.store(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, ordering: .relaxed)
                let seconds = Int(timeout.components.seconds)
                logger.warning("consumer close: the group's coordinator did not answer for \(seconds) s; left without it (the group notices when the session times out)")
                return
            }
            let n = buffer.withUnsafeMutableBufferPointer { rd_kafka_consume_batch_queue(handle, 100, $0.baseAddress, 256) }
            for i in 0..<max(0, n) { if let raw = buffer[i] { rd_kafka_message_destroy(raw) } }
        }
    }

    /// Leaves the group before `rd_kafka_consumer_close`. In librdkafka 2.0.2 the close can wait for ever when
    /// the revoke it raises is answered from the rebalance callback while a rebalance is under way
    /// (confluentinc/librdkafka#4884; seen here when a second member joined the group as the first closed). So
    /// a subscribed consumer unsubscribes first and serves the resulting revoke (or a pending assignment, then
    /// its revoke) through ordinary queue polls, until nothing is assigned or 10 s have passed; the close then
    /// has nothing left to revoke. Messages polled meanwhile are dropped: they were not handed out, and
    /// callers resume from their own checkpointed offsets.
    private func leaveGroupBeforeClosing() {
        guard subscribed.load(ordering: .relaxed) else { return }
        _ = rd_kafka_unsubscribe(client.handle)
        let deadline = ContinuousClock.now + .seconds(10)
        var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: 256)
        let handle = queue.handle
        while ContinuousClock.now < deadline, !((try? assignment()) ?? []).isEmpty {
            let n = buffer.withUnsafeMutableBufferPointer { rd_kafka_consume_batch_queue(handle, 100, $0.baseAddress, 256) }
            for i in 0..<max(0, n) { if let raw = buffer[i] { rd_kafka_message_destroy(raw) } }
        }
    }

    /// Client-level errors seen so far (broker down, ...), for progress reports and metrics.
    public var clientErrorCount: Int { client.context.errorCount.load(ordering: .relaxed) }

    /// Since when no broker of the cluster answers; nil while it does.
    public var unreachableSince: ContinuousClock.Instant? { client.context.cluster.unreachableSince.withLock { $0 } }

    /// While the cluster is unreachable, asks it for metadata (waiting at most `timeout`); an answer ends the
    /// unreachable state (one log line). Returns whether the cluster is reachable.
    @discardableResult
    public func probeCluster(timeout: Duration = .seconds(1)) -> Bool {
        guard client.context.cluster.unreachable.load(ordering: .relaxed) else { return true }
        var md: UnsafePointer<rd_kafka_metadata>? = nil
        let err = rd_kafka_metadata(client.handle, 0, nil, &md, Self.ms(timeout))
        if let md { rd_kafka_metadata_destroy(md) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return false }
        client.context.markReachable()
        return true
    }

    // MARK: - Internals

    /// Topic names by `rd_kafka_topic_t` address, so a name is decoded once, not per message.
    private let topicNames = Mutex<[Int: String]>([:])

    private func classify(_ raw: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaError? {
        let msg = raw.pointee
        let topic = msg.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
        switch msg.err {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            return nil
        case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
            var low: Int64 = -1, high: Int64 = -1
            _ = rd_kafka_query_watermark_offsets(client.handle, topic, msg.partition, &low, &high, 5000)
            let wanted = msg.offset
            let range = low >= 0 && wanted >= 0 && wanted < low
                ? "offsets \(wanted)..<\(low) (\(low - wanted) messages) are no longer on the broker"
                : "offset \(wanted) is outside the broker's range \(low)..<\(high)"
            return KafkaError(kind: .offsetOutOfRange, code: msg.err.rawValue,
                              message: "\(topic)[\(msg.partition)]: \(range); data was lost before it was consumed")
        default:
            let text = rd_kafka_message_errstr(raw).map { String(cString: $0) } ?? ""
            let error = KafkaError(kind: .librdkafka, code: msg.err.rawValue, message: "consume \(topic)[\(msg.partition)]: \(text)")
            client.context.errorCount.add(1, ordering: .relaxed)
            client.context.lastError.withLock { $0 = error }
            logger.warning("\(error)")
            return nil
        }
    }

    private static func headers(of raw: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer? = nil
        guard rd_kafka_message_headers(raw, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var idx = 0
        var name: UnsafePointer<CChar>? = nil
        var val: UnsafeRawPointer? = nil
        var size = 0
        while rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            headers.append(KafkaHeader(name.map { String(cString: $0) } ?? "", bytes))
            idx += 1
        }
        return headers
    }

    static func ms(_ d: Duration) -> Int32 {
        Int32(clamping: d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Owns one `rd_kafka_queue_t`.
final class QueueHandle: @unchecked Sendable {
    // @unchecked: librdkafka queues are thread safe; the pointer never changes.
    let handle: OpaquePointer
    private let client: NativeClient
    init(_ handle: OpaquePointer, client: NativeClient) {
        self.handle = handle
        self.client = client
    }
    deinit { rd_kafka_queue_destroy(handle) }
}

/// Owns one `rd_kafka_topic_partition_list_t`.
final class PartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ partitions: [TopicPartition], offsets: [KafkaOffset]? = nil) {
        list = rd_kafka_topic_partition_list_new(Int32(max(partitions.count, 1)))
        for (i, tp) in partitions.enumerated() {
            let entry = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)
            if let offsets { entry?.pointee.offset = offsets[i].rawValue }
        }
    }

    init(adopting list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.list = list
    }

    deinit { rd_kafka_topic_partition_list_destroy(list) }

    func withPointer<T>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> T) -> T { body(list) }

    struct Entry {
        var partition: TopicPartition
        var offset: Int64
        var error: rd_kafka_resp_err_t
    }

    func entries() -> [Entry] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return Entry(partition: TopicPartition(String(cString: e.topic), e.partition), offset: e.offset, error: e.err)
        }
    }

    func setOffsets(_ offsets: [TopicPartition: KafkaOffset]) {
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            let tp = TopicPartition(String(cString: e.topic), e.partition)
            list.pointee.elems[i].offset = offsets[tp]?.rawValue ?? KafkaOffset.stored.rawValue
        }
    }
}

private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, partitions, opaque in
    guard let rk, let partitions, let context = ClientContext.from(opaque),
          let state = context.rebalance.withLock({ $0 }) else { return }
    let list = PartitionList(adopting: rd_kafka_topic_partition_list_copy(partitions))
    let tps = list.entries().map(\.partition)
    let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        let offsets = state.handler.onAssign(tps)
        list.setOffsets(offsets)
        context.logger.info("partitions assigned: \(TopicPartitionRanges(tps))")
        list.withPointer { ptr in
            if cooperative {
                if let e = rd_kafka_incremental_assign(rk, ptr) { rd_kafka_error_destroy(e) }
            } else {
                _ = rd_kafka_assign(rk, ptr)
            }
        }
    } else {
        state.handler.onRevoke(tps)
        context.logger.info("partitions revoked: \(TopicPartitionRanges(tps))")
        if cooperative {
            if let e = rd_kafka_incremental_unassign(rk, partitions) { rd_kafka_error_destroy(e) }
        } else {
            _ = rd_kafka_assign(rk, nil)
        }
    }
}
