import CRdKafka
import Logging
import Synchronization

/// Owns one `rd_kafka_t`. `init` creates it, `deinit` destroys it; nothing else frees it.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread safe for every call we make
/// on it, and the pointer itself never changes after `init`.
final class NativeClient: @unchecked Sendable {
    let handle: OpaquePointer
    let context: ClientContext

    init(type: rd_kafka_type_t, config: KafkaConfig, context: ClientContext,
         configure: (OpaquePointer) -> Void = { _ in }) throws {
        let conf = try config.makeNativeConf()
        self.context = context
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        configure(conf)
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(type, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            let reason = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(kind: .configuration, message: "cannot create Kafka client: \(reason)")
        }
        self.handle = rk
    }

    deinit {
        rd_kafka_destroy(handle)
    }
}

/// State that librdkafka's callbacks reach through the client's opaque pointer.
/// Kept alive by the `NativeClient` that points at it.
final class ClientContext: Sendable {
    let logger: Logger
    let lastError = Mutex<KafkaError?>(nil)
    let errorCount = Atomic<Int>(0)
    let onDelivery: (@Sendable (DeliveryReport) -> Void)?
    /// Receives each delivered message's latency, in microseconds from `send` to the broker's acknowledgement.
    let onLatency: (@Sendable (Int64) -> Void)?
    let delivery = DeliveryCounters()
    let rebalance = Mutex<RebalanceState?>(nil)

    init(logger: Logger, onDelivery: (@Sendable (DeliveryReport) -> Void)? = nil, onLatency: (@Sendable (Int64) -> Void)? = nil) {
        self.logger = logger
        self.onDelivery = onDelivery
        self.onLatency = onLatency
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> ClientContext? {
        guard let opaque else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

final class DeliveryCounters: Sendable {
    let delivered = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let firstFailure = Mutex<KafkaError?>(nil)
    /// Calls of `KafkaProducer.send(_:topics:headers:)` under way. While there are any, the sending thread
    /// serves the delivery reports and the poll thread leaves them alone, so that a message is freed by the
    /// thread that allocated it instead of by another contending for the same malloc arena.
    let batchSenders = Atomic<Int>(0)
}

struct RebalanceState: Sendable {
    var handler: RebalanceHandler
}

private let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    rk, level, facility, message in
    guard let rk, let context = ClientContext.from(rd_kafka_opaque(rk)) else { return }
    let fac = facility.map { String(cString: $0) } ?? "?"
    let text = message.map { String(cString: $0) } ?? ""
    // syslog levels: 0-3 error, 4 warning, 5-6 info/notice, 7 debug.
    let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
    context.logger.log(level: swiftLevel, "\(text)", metadata: ["kafka.facility": "\(fac)"])
}

private let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    _, err, reason, opaque in
    guard let context = ClientContext.from(opaque) else { return }
    let code = rd_kafka_resp_err_t(rawValue: err)
    let error = KafkaError(kind: .librdkafka, code: err,
                           message: reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(code)))
    context.errorCount.add(1, ordering: .relaxed)
    context.lastError.withLock { $0 = error }
    context.logger.warning("Kafka client error: \(error)")
}
