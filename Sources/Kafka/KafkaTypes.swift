/// A Kafka offset, with librdkafka's logical offsets as named values.
public struct KafkaOffset: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { self.rawValue = value }

    /// The earliest offset the broker still has.
    public static let beginning = KafkaOffset(-2)
    /// The offset after the last message.
    public static let end = KafkaOffset(-1)
    /// The group's committed offset, else `auto.offset.reset`.
    public static let stored = KafkaOffset(-1000)

    public var isLogical: Bool { rawValue < 0 }
    public static func < (a: KafkaOffset, b: KafkaOffset) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch rawValue {
        case -2: "beginning"
        case -1: "end"
        case -1000: "stored"
        default: String(rawValue)
        }
    }
}

public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
    public var description: String { "\(topic)[\(partition)]" }
}

public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]
    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }
}

/// A message to produce. `partition` nil lets the configured partitioner (murmur2) choose by key.
public struct ProducerMessage: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch; nil lets librdkafka use the current time.
    public var timestampMs: Int64?
    public var partition: Int32?

    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [],
                timestampMs: Int64? = nil, partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMs = timestampMs
        self.partition = partition
    }
}

/// A consumed message, copied out of librdkafka's buffers. The keys and values of one polled batch share
/// one buffer (slices of it), so a message costs no allocation of its own.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: ArraySlice<UInt8>?
    public var value: ArraySlice<UInt8>
    public var headers: [KafkaHeader]
    public var timestampMs: Int64?

    public init(topic: String, partition: Int32, offset: Int64, key: ArraySlice<UInt8>?, value: ArraySlice<UInt8>,
                headers: [KafkaHeader] = [], timestampMs: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMs = timestampMs
    }

    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.name == name }?.value
    }
    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
}

/// The outcome of one produced message, reported by librdkafka once the broker acknowledged it
/// (or it finally failed after librdkafka's own retries).
public struct DeliveryReport: Sendable {
    public var topic: String
    public var partition: Int32
    /// The token given to `send`.
    public var token: UInt
    public var result: Result<Int64, KafkaError>
}

public struct TopicMetadata: Sendable, Equatable {
    public var name: String
    public var partitions: [Int32]
}

public struct Watermarks: Sendable, Equatable {
    public var low: Int64
    public var high: Int64
    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}

/// Messages whose keys and values lie back to back in one byte buffer: one allocation for a whole batch
/// instead of two arrays per message. Sent with `KafkaProducer.send(_:topics:headers:)`, which names the
/// topics and header sets that `topic` and `headers` index.
public struct PackedMessages: Sendable {
    public struct Record: Sendable, Equatable {
        public var topic: Int
        public var headers: Int
        /// The key is `bytes[keyStart..<valueStart]`, the value `bytes[valueStart..<end]`.
        public var keyStart: Int
        public var valueStart: Int
        public var end: Int
        public var timestampMs: Int64
    }

    public private(set) var bytes: [UInt8] = []
    public private(set) var records: [Record] = []

    public init() {}

    public var count: Int { records.count }
    public var isEmpty: Bool { records.isEmpty }

    /// Appends a message: `key`, then the value that `writeValue` appends to the buffer.
    public mutating func append(topic: Int, headers: Int, key: String, timestampMs: Int64, value writeValue: (inout [UInt8]) -> Void) {
        let keyStart = bytes.count
        bytes.append(contentsOf: key.utf8)
        let valueStart = bytes.count
        writeValue(&bytes)
        records.append(Record(topic: topic, headers: headers, keyStart: keyStart, valueStart: valueStart, end: bytes.count,
                              timestampMs: timestampMs))
    }

    public func key(_ i: Int) -> ArraySlice<UInt8> { bytes[records[i].keyStart..<records[i].valueStart] }
    public func value(_ i: Int) -> ArraySlice<UInt8> { bytes[records[i].valueStart..<records[i].end] }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }
}

/// Partition numbers as ranges, `0-63,65`, so that a log line about 192 partitions stays one short line.
public struct PartitionRanges: CustomStringConvertible, Sendable {
    public let numbers: [Int32]
    public init(_ numbers: some Sequence<Int32>) { self.numbers = Set(numbers).sorted() }

    public var description: String {
        var parts: [String] = []
        var i = 0
        while i < numbers.count {
            var j = i
            while j + 1 < numbers.count && numbers[j + 1] == numbers[j] + 1 { j += 1 }
            parts.append(i == j ? "\(numbers[i])" : "\(numbers[i])-\(numbers[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}

/// Topic-partitions grouped by topic, `billing[0-63] payments[0-63]`.
public struct TopicPartitionRanges: CustomStringConvertible, Sendable {
    public let byTopic: [(String, PartitionRanges)]
    public init(_ partitions: some Sequence<TopicPartition>) {
        byTopic = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { ($0.key, PartitionRanges($0.value.map(\.partition))) }
    }
    public var description: String { byTopic.map { "\($0.0)[\($0.1)]" }.joined(separator: " ") }
}
