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
    /// `rd_kafka_destroy_flags`' flags for `deinit` (a consumer whose close gave up sets NO_CONSUMER_CLOSE).
    let destroyFlags = Atomic<Int32>(0)

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
        rd_kafka_destroy_flags(handle, destroyFlags.load(ordering: .relaxed))
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
    /// Whether the cluster answers, shared by every client of this process that talks to it.
    let cluster: ClusterState
    /// The last client error logged at warning, and when: the same error is logged again at most once a minute.
    let lastLogged = Mutex<(text: String, at: ContinuousClock.Instant)?>(nil)

    init(logger: Logger, cluster bootstrap: String? = nil, onDelivery: (@Sendable (DeliveryReport) -> Void)? = nil,
         onLatency: (@Sendable (Int64) -> Void)? = nil) {
        self.logger = logger
        self.cluster = ClusterState.shared(bootstrap)
        self.onDelivery = onDelivery
        self.onLatency = onLatency
    }

    /// The cluster answered (a message, a delivery, metadata): one line if it had been unreachable.
    func markReachable() {
        guard cluster.unreachable.load(ordering: .relaxed) else { return }
        let since = cluster.unreachableSince.withLock { s -> ContinuousClock.Instant? in
            defer { s = nil }
            cluster.unreachable.store(false, ordering: .relaxed)
            return s
        }
        if let since {
            logger.notice("Kafka cluster reachable again after \(Int((ContinuousClock.now - since).components.seconds)) s")
        }
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

/// Whether a cluster answers, one per bootstrap address in a process: a consumer and the producer beside it
/// share it, so a cluster going away (and coming back) is one line, not one per client.
final class ClusterState: Sendable {
    let unreachableSince = Mutex<ContinuousClock.Instant?>(nil)
    /// A cheap check for the delivery path: whether `unreachableSince` is set.
    let unreachable = Atomic<Bool>(false)

    private static let states = Mutex<[String: ClusterState]>([:])

    /// The state of the cluster at `bootstrap` (a private one when nil).
    static func shared(_ bootstrap: String?) -> ClusterState {
        guard let bootstrap else { return ClusterState() }
        return states.withLock { states in
            if let s = states[bootstrap] { return s }
            let s = ClusterState()
            states[bootstrap] = s
            return s
        }
    }
}

struct RebalanceState: Sendable {
    var handler: RebalanceHandler
}

private let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    rk, level, facility, message in
    guard let rk, let context = ClientContext.from(rd_kafka_opaque(rk)) else { return }
    let fac = facility.map { String(cString: $0) } ?? "?"
    let text = message.map { String(cString: $0) } ?? ""
    context.logger.log(level: librdkafkaLogLevel(facility: fac, level: level, text: text), "\(text)", metadata: ["kafka.facility": "\(fac)"])
}

/// The level a librdkafka log line is logged at. syslog levels: 0-3 error, 4 warning, 5-6 info/notice, 7 debug.
/// A broker connection failing ("FAIL") is also reported through the error callback, which logs it once per
/// state change: debug here. So is a property of the other kind of client ("… is a consumer property and will
/// be ignored by this producer instance"): one `-X` list configures a command's producers and consumers alike.
func librdkafkaLogLevel(facility: String, level: Int32, text: String) -> Logger.Level {
    if facility == "FAIL" { return .debug }
    if facility == "CONFWARN" && (text.hasSuffix("will be ignored by this producer instance") || text.hasSuffix("will be ignored by this consumer instance")) {
        return .debug
    }
    return level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
}

private let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    _, err, reason, opaque in
    guard let context = ClientContext.from(opaque) else { return }
    let code = rd_kafka_resp_err_t(rawValue: err)
    let error = KafkaError(kind: .librdkafka, code: err,
                           message: reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(code)))
    context.errorCount.add(1, ordering: .relaxed)
    context.lastError.withLock { $0 = error }
    if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN {
        let first = context.cluster.unreachableSince.withLock { s -> Bool in
            guard s == nil else { return false }
            s = .now
            return true
        }
        context.cluster.unreachable.store(true, ordering: .relaxed)
        if first { context.logger.warning("Kafka cluster unreachable: no broker answers (\(error.message)); retrying until one does") }
        return
    }
    // A broker's connection failing: librdkafka reconnects by itself, and when no broker answers the line above
    // says so once. Other errors are logged, the same one at most once a minute.
    if code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__RESOLVE {
        context.logger.debug("Kafka client error: \(error)")
        return
    }
    let text = "\(error)"
    let now = ContinuousClock.now
    let log = context.lastLogged.withLock { last -> Bool in
        if let last, last.text == text, now - last.at < .seconds(60) { return false }
        last = (text, now)
        return true
    }
    context.logger.log(level: log ? .warning : .debug, "Kafka client error: \(error)")
}
