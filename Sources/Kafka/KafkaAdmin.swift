import CRdKafka
import Logging

/// Cluster metadata, watermarks and topic creation.
public final class KafkaAdmin: Sendable {
    private let client: NativeClient

    public init(config: KafkaConfig, logger: Logger) throws {
        client = try NativeClient(type: RD_KAFKA_PRODUCER, config: config, context: ClientContext(logger: logger, cluster: config["bootstrap.servers"]))
    }

    /// Topics and their partitions. With `topic`, only that topic (an error if it does not exist).
    /// Blocking up to `timeout`.
    public func metadata(topic: String? = nil, timeout: Duration = .seconds(10)) throws -> [TopicMetadata] {
        var meta: UnsafePointer<rd_kafka_metadata>? = nil
        var topicHandle: TopicHandle? = nil
        if let topic { topicHandle = try TopicHandle(client: client, name: topic) }
        let err = rd_kafka_metadata(client.handle, topic == nil ? 1 : 0, topicHandle?.handle, &meta,
                                    KafkaConsumer.ms(timeout))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let meta else {
            throw KafkaError(err, context: "metadata")
        }
        defer { rd_kafka_metadata_destroy(meta) }
        var result: [TopicMetadata] = []
        for i in 0..<Int(meta.pointee.topic_cnt) {
            let t = meta.pointee.topics[i]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if topic != nil { throw KafkaError(t.err, context: "topic \(String(cString: t.topic))") }
                continue
            }
            let parts = (0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted()
            result.append(TopicMetadata(name: String(cString: t.topic), partitions: parts))
        }
        return result.sorted { $0.name < $1.name }
    }

    /// The partitions of each of `topics` the cluster has (a topic it lacks is absent from the answer), from its
    /// list of all topics: asking for one topic by name may make a cluster that creates topics on demand create it.
    public func partitions(of topics: [String], timeout: Duration = .seconds(10)) throws -> [String: [Int32]] {
        let wanted = Set(topics)
        var found: [String: [Int32]] = [:]
        for t in try metadata(timeout: timeout) where wanted.contains(t.name) { found[t.name] = t.partitions }
        return found
    }

    /// The low and high watermarks of a partition, asked of the broker. Blocking up to `timeout`.
    public func watermarks(_ tp: TopicPartition, timeout: Duration = .seconds(10)) throws -> Watermarks {
        var low: Int64 = 0, high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(client.handle, tp.topic, tp.partition, &low, &high,
                                                   KafkaConsumer.ms(timeout))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "watermarks of \(tp)") }
        return Watermarks(low: low, high: high)
    }

    /// Creates topics; an existing topic with that name is not an error. Blocking up to `timeout`.
    public func createTopics(_ topics: [(name: String, partitions: Int, replicationFactor: Int)],
                             timeout: Duration = .seconds(30)) throws {
        guard !topics.isEmpty else { return }
        var errbuf = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
        for t in topics {
            guard let nt = rd_kafka_NewTopic_new(t.name, Int32(t.partitions), Int32(t.replicationFactor), &errbuf, errbuf.count) else {
                let reason = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(kind: .configuration, message: "topic \(t.name): \(reason)")
            }
            newTopics.append(nt)
        }
        guard let queue = rd_kafka_queue_new(client.handle) else {
            throw KafkaError(kind: .librdkafka, message: "cannot create admin queue")
        }
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, KafkaConsumer.ms(timeout), &errbuf, errbuf.count)
        newTopics.withUnsafeMutableBufferPointer { buf in
            rd_kafka_CreateTopics(client.handle, buf.baseAddress, buf.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, KafkaConsumer.ms(timeout) + 1000) else {
            throw KafkaError(kind: .timeout, message: "create topics: no answer from the cluster within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventErr = rd_kafka_event_error(event)
        if eventErr != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(eventErr, context: "create topics")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for i in 0..<count {
            let r = results[i]
            let err = rd_kafka_topic_result_error(r)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let name = String(cString: rd_kafka_topic_result_name(r))
                let msg = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                throw KafkaError(kind: .librdkafka, code: err.rawValue, message: "create topic \(name): \(msg)")
            }
        }
    }

    /// The earliest offset of each partition whose message timestamp is at or after the given time
    /// (ListOffsets by timestamp); the partition's end offset where no message is that late.
    /// Throws when the cluster cannot answer, e.g. the embedded broker, which lacks this lookup.
    public func offsets(forTimes times: [TopicPartition: Int64], timeout: Duration = .seconds(10)) throws -> [TopicPartition: Int64] {
        let keys = times.keys.sorted()
        let list = PartitionList(keys, offsets: keys.map { KafkaOffset(times[$0]!) })
        let err = list.withPointer { rd_kafka_offsets_for_times(client.handle, $0, KafkaConsumer.ms(timeout)) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "offsets for times") }
        var result: [TopicPartition: Int64] = [:]
        for e in list.entries() {
            if e.error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(e.error, context: "offset for time in \(e.partition)") }
            if e.offset < 0 {
                // No message at or after the time: start at the end.
                result[e.partition] = try watermarks(e.partition, timeout: timeout).high
            } else {
                result[e.partition] = e.offset
            }
        }
        return result
    }
}
