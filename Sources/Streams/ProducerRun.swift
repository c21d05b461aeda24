import Consumer
import Events
import Foundation
import Kafka
import Logging
import Simulation
import Telemetry

/// How fast a producer emits.
public enum Pacing: Sendable, Equatable {
    /// As fast as possible; event times come from the simulated history.
    case backfill
    /// Simulated time runs `speed` times wall-clock time.
    case realtime(speed: Double)
    /// At most this many events per second.
    case rate(Double)
}

/// Runs the simulation and produces one topic's events (or all topics', for the demo and load tests).
public struct ProducerRun {
    public var topics: Set<InputTopic>
    public var topicNames: [InputTopic: String]
    public var pacing: Pacing
    public var label: String
    /// How long the final flush waits for messages in flight (see `KafkaProducer.flushSaying`).
    public var finalFlush: Duration = .seconds(120)
    /// With `.backfill`: called after each batch with the messages sent so far, and returns once the reader of the
    /// topic is close enough behind (the demo's consumer: the embedded broker keeps only the newest 5 MiB of a
    /// partition, and a producer running ahead would have it drop what the consumer has not read yet).
    public var holdBack: ((_ sent: Int) -> Void)?

    public init(topics: Set<InputTopic>, topicNames: [InputTopic: String] = [:], pacing: Pacing, label: String) {
        self.topics = topics
        self.topicNames = topicNames
        self.pacing = pacing
        self.label = label
    }

    public struct Summary: Sendable {
        public var sent: Int
        public var delivered: Int
        public var failed: Int
        public var seconds: Double
        public var firstFailure: KafkaError?
        public var interrupted: Bool
        /// The messages the final flush left in flight, in words (nil: none).
        public var gaveUp: String? = nil

        /// Why messages were not delivered, for the error line.
        public var undelivered: String { KafkaProducer.undelivered(gaveUp: gaveUp, firstFailure: firstFailure) }
    }

    /// Produces until the simulation ends or `stop` is set, then flushes. `report` receives progress lines, `notice`
    /// lines that must stay (a final flush that waits).
    public func run(world: World, simulationStart: Timestamp, producer: KafkaProducer, stop: StopSignal,
                    report: (String) -> Void, notice: (String) -> Void) throws -> Summary {
        var world = world
        let started = ContinuousClock.now
        var lastReport = started
        var lastSent = 0
        var sent = 0
        var value = [UInt8]()
        var encoder = EventEncoder.Reusable()
        var rateDue = started
        // By topic and type position (`ordinal`): no hashing per event.
        let names = InputTopic.allCases.map { topicNames[$0] ?? $0.rawValue }
        let wanted = InputTopic.allCases.map { topics.contains($0) }
        let schemaHeader = KafkaHeader("schema", "1")
        // Each type's two headers as one shared array: no array built per message.
        let typeHeaders = EventType.allCases.map { [KafkaHeader("event-type", $0.rawValue), schemaHeader] }
        var simulated = simulationStart
        /// A progress line at most once a second.
        func progress() {
            let now = ContinuousClock.now
            guard now - lastReport >= .seconds(1) else { return }
            let s = producer.statistics
            let rate = Double(sent - lastSent) / (now - lastReport).seconds
            report("\(label): \(sent) sent (\(Int(rate))/s), simulated \(simulated.description.prefix(10)), delivered \(s.delivered), failed \(s.failed), in flight \(s.inFlight)")
            lastReport = now
            lastSent = sent
        }
        if pacing == .backfill {
            // As fast as possible: simulate and encode on a thread of their own, send on this one.
            let topicList = EncodedStream.topics.map { names[$0.ordinal] }
            let headerSets = EncodedStream.types.map { typeHeaders[$0.ordinal] }
            let source = EncodedStream(world: world, topics: topics, stop: stop)
            defer { source.cancel() }
            while var batch = source.next() {
                // A stop while the cluster is away (the queue full) ends the wait at once.
                let taken = try producer.send(batch, topics: topicList, headers: headerSets, cancelled: { stop.isStopped })
                sent += taken
                if taken < batch.count { break }
                if let last = batch.records.last { simulated = Timestamp(ms: last.timestampMs) }
                progress()
                holdBack?(sent)
                source.recycle(&batch)
            }
        }
        while pacing != .backfill, !stop.isStopped, let event = world.next() {
            guard wanted[event.topic.ordinal] else { continue }
            simulated = event.occurredAt
            switch pacing {
            case .backfill: break
            case let .realtime(speed):
                let due = started + .milliseconds(Int64(Double(event.occurredAt.ms - simulationStart.ms) / speed))
                while !stop.isStopped && ContinuousClock.now < due { stop.sleep(due - ContinuousClock.now) }  // woken at once by a stop
            case let .rate(r):
                // The first event at once, each next one an interval after the one before (a wait cut short by a stop).
                let now = ContinuousClock.now
                if rateDue > now { stop.sleep(rateDue - now) }
                else if now - rateDue > .seconds(1) { rateDue = now }  // don't burst after a stall
                rateDue = rateDue + .nanoseconds(Int64(1e9 / r))
            }
            value.removeAll(keepingCapacity: true)
            encoder.encode(event, into: &value)
            guard try producer.send(ProducerMessage(topic: names[event.topic.ordinal], key: Array(event.customerID.utf8), value: value,
                                                    headers: typeHeaders[event.type.ordinal], timestampMs: event.occurredAt.ms),
                                    cancelled: { stop.isStopped }) else { break }
            sent += 1
            if sent & 1023 == 0 { progress() }
        }
        let interrupted = stop.isStopped
        let gaveUp = producer.flushSaying(label, stop: stop, timeout: finalFlush, notice: notice)
        let s = producer.statistics
        return Summary(sent: sent, delivered: s.delivered, failed: s.failed, seconds: (ContinuousClock.now - started).seconds,
                       firstFailure: producer.firstDeliveryFailure, interrupted: interrupted, gaveUp: gaveUp)
    }
}

/// The simulation, filtered to some topics and encoded, produced in batches by a thread of its own into a
/// small bounded queue (simulation and sending then use both cores).
final class EncodedStream: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [PackedMessages] = []
    /// Sent batches handed back, so that their buffers are reused rather than allocated again.
    private var spare: [PackedMessages] = []
    private var finished = false
    private var cancelled = false
    private let capacity = 8

    /// The world moves to the simulation thread and is used there only.
    private final class Owned: @unchecked Sendable {
        private var world: World?
        init(_ world: World) { self.world = world }
        /// Moves the world out (once), so that the thread steps a local value: stepping it inside this class
        /// cost a dynamic exclusivity check per event (about 50 instructions).
        func take() -> World {
            defer { world = nil }
            return world!
        }
    }

    /// A batch's records index these: `topic` is the position of the event's topic, `headers` of its type
    /// (the sender sends them with the topic names and header sets listed in the same order).
    static let topics = InputTopic.allCases
    static let types = EventType.allCases

    init(world: World, topics: Set<InputTopic>, stop: StopSignal, batchSize: Int = 2048) {
        let owned = Owned(world)
        // By topic position (`Self.topics` is `allCases`): whether it is produced. No hashing per event.
        let wanted = Self.topics.map { topics.contains($0) }
        let thread = Thread { [self] in
            var world = owned.take()
            var batch = PackedMessages()
            var encoder = EventEncoder.Reusable()
            func flush() -> Bool {
                condition.lock()
                defer { condition.unlock() }
                while queue.count >= capacity && !cancelled { condition.wait() }
                if cancelled { return false }
                queue.append(batch)
                batch = spare.popLast() ?? PackedMessages()
                condition.broadcast()
                return true
            }
            // The event is read where it lies in the world (`peekNext`, `encodeNext`), not copied out of it.
            while !stop.isStopped, let event = world.peekNext() {
                let topic = event.topic.ordinal
                guard wanted[topic] else {
                    _ = world.skipNext()
                    continue
                }
                batch.append(topic: topic, headers: event.type.ordinal, key: event.customerID,
                             timestampMs: event.occurredAt.ms) { _ = world.encodeNext(&encoder, into: &$0) }
                if batch.count == batchSize {
                    guard flush() else { break }
                }
            }
            if !batch.isEmpty { _ = flush() }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "simulation"
        thread.start()
    }

    /// The next batch, waiting for it; nil at the end.
    func next() -> PackedMessages? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        guard !queue.isEmpty else { return nil }
        let batch = queue.removeFirst()
        condition.broadcast()
        return batch
    }

    /// Gives a sent batch back for its buffers to be reused.
    func recycle(_ batch: inout PackedMessages) {
        batch.removeAll()
        condition.lock()
        if spare.count < capacity { spare.append(batch) }
        condition.unlock()
    }

    /// Stops the simulation thread (after an error on the sending side).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

extension KafkaProducer {
    /// Flushes for up to two minutes, saying so when it takes more than a second: with the cluster away a flush
    /// takes its whole timeout, and a producer finishing (or stopped by Ctrl-C) looked hung. Returns a sentence
    /// for the messages still in flight when it gave up (nil when none were left): the caller's summary counts
    /// them as not delivered (the flush's own error ended the command with a bare `Error: flush: …`).
    @discardableResult
    func flushSaying(_ label: String, stop: StopSignal, timeout: Duration = .seconds(120), notice: (String) -> Void) -> String? {
        let first = min(timeout, .seconds(1))
        do { try flush(timeout: first) } catch {
            let unreachable = unreachableSince != nil ? " (the cluster is unreachable)" : ""
            let seconds = Int(timeout.seconds.rounded())
            notice("\(label): waiting up to \(seconds) s for \(statistics.inFlight) events in flight to be delivered\(unreachable)"
                        + "; Ctrl-C \(stop.isStopped ? "again" : "twice") exits now and they are lost")
            do { try flush(timeout: timeout - first) } catch {
                return "\(statistics.inFlight) still in flight when the final flush gave up after \(seconds) s\(unreachable)"
            }
        }
        return nil
    }

    /// Why messages were not delivered, for a command's error line: what the final flush left in flight
    /// (`flushSaying`) and the first delivery failure.
    public static func undelivered(gaveUp: String?, firstFailure: KafkaError?) -> String {
        let why = [gaveUp, firstFailure.map { "first failure: \($0)" }].compactMap { $0 }.joined(separator: "; ")
        return why.isEmpty ? "first failure: unknown" : why
    }
}
