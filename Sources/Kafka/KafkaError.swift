import CRdKafka

/// An error from the Kafka layer: the librdkafka error code (when there is one) and a readable message.
public struct KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// librdkafka returned an error code.
        case librdkafka
        /// A configuration property was rejected.
        case configuration
        /// Nothing answered in time.
        case timeout
        /// Messages were lost: the broker no longer holds the requested offsets.
        case offsetOutOfRange
        /// The client was used after `close()`.
        case closed
    }

    public let kind: Kind
    /// librdkafka's `rd_kafka_resp_err_t` value, 0 when not applicable.
    public let code: Int32
    public let message: String

    public init(kind: Kind, code: Int32 = 0, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    init(_ err: rd_kafka_resp_err_t, context: String) {
        self.kind = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timeout : .librdkafka
        self.code = err.rawValue
        self.message = "\(context): \(String(cString: rd_kafka_err2str(err)))"
    }

    /// librdkafka's symbolic name for `code`, e.g. `_TRANSPORT` or `NOT_LEADER_FOR_PARTITION`.
    public var codeName: String {
        String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: code)))
    }

    public var description: String {
        code == 0 ? message : "\(message) [\(codeName)]"
    }
}

/// Kafka protocol error codes used by callers (fault injection, tests) without importing C.
public enum KafkaErrorCode {
    public static let notLeaderForPartition = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue
    public static let requestTimedOut = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue
    public static let notEnoughReplicas = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue
    public static let leaderNotAvailable = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue
    public static let queueFull = RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue
    public static let transport = RD_KAFKA_RESP_ERR__TRANSPORT.rawValue
    public static let allBrokersDown = RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue
    public static let unknownPartition = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION.rawValue
}

/// Kafka API keys for request-error injection on the embedded broker.
public enum KafkaAPIKey: Int16, Sendable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case syncGroup = 14
    case initProducerId = 22
}
