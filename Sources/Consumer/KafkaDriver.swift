import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts

/// Feeds the core from a consumer group: joins it, opens the partitions it is given at their checkpointed
/// offsets (or the start time's, or the earliest), polls batches into `ConsumerCore.apply`, hands the
/// outputs to the sinks, checkpoints when due, and restarts partitions whose fetch stalled. Runs on the
/// calling thread until `stop` (or `exitWhenIdle`).
///
/// `@unchecked Sendable`: the rebalance callbacks that touch it run on the polling thread, inside `poll`,
/// which is the only thread that touches it otherwise.
final class KafkaDriver: @unchecked Sendable {
    let core: ConsumerCore
    let options: ConsumerOptions
    let logger: Logger
    let reporter: ConsumerReporter
    private var loadError: CheckpointError?
    /// What was last committed to the group, per topic-partition.
    private var committedPositions: [TopicPartition: Int64] = [:]
    /// Whether the group has given this consumer partitions at any time.
    private var everAssigned = false
    /// The topic-partitions the group gave this consumer.
    private var assignment = Set<TopicPartition>()
    /// When `reachedUntil` last looked at the partitions' ends.
    private var lastEndCheck = ContinuousClock.now - .seconds(60)

    init(core: ConsumerCore, reporter: ConsumerReporter, logger: Logger) {
        self.core = core
        self.options = core.options
        self.reporter = reporter
        self.logger = logger
    }

    /// The consumer's client configuration: the user's, with the group and a deeper prefetch queue.
    func consumerConfig(_ kafka: KafkaConfig) -> KafkaConfig {
        var config = kafka
        config["group.id"] = config["group.id"] ?? options.group
        // Prefetch: with librdkafka's default queued.min.messages (100,000) the fetcher of this consumer sat
        // idle for 0.3-0.5 s about once a second while lag was in the hundreds of thousands (measured with
        // `undercurrent-bench pipeline`); a deeper queue, bounded at 128 MiB, keeps it busy.
        return config.withDefaults(["queued.min.messages": "1000000", "queued.max.messages.kbytes": "131072"])
    }

    func run(kafka given: KafkaConfig, stop: StopSignal) throws {
        try core.start()
        let started = ContinuousClock.now
        let (kafka, tuned) = EmbeddedBroker.tuned(given)
        if !tuned.isEmpty { logger.notice("\(EmbeddedBroker.tunedNotice(tuned))") }
        let config = consumerConfig(kafka)
        logger.info("connecting to Kafka", metadata: [LogKey.config: "\(config.redactedDescription)"])
        // Outputs wait for a cluster that is away rather than being dropped after librdkafka's default five minutes:
        // a checkpoint covers only delivered outputs, so a dropped one would stop the consumer (`OutputsLostError`).
        var outputs = given
        if outputs["message.timeout.ms"] == nil && outputs["delivery.timeout.ms"] == nil { outputs["message.timeout.ms"] = "0" }
        let producer = try KafkaProducer(config: outputs, logger: logger)
        let topicsSink = KafkaTopicsSink(producer: producer, options: options, logger: logger,
                                         giveUpWhen: { [weak core] in core?.giveUpCheckpointsWhen?() ?? false },
                                         stopped: { stop.isStopped }, whileWaiting: { [weak core] in core?.whileRetrying?() })
        let sinks: [any ConsumerSink] = [topicsSink] + reporter.sinks
        let startOffsets = options.startOffsets.merging(options.startTime.map { lookUpStartOffsets(at: $0, kafka: kafka) } ?? [:]) { given, _ in given }
        let startMs = options.startTime?.ms
        let handler = RebalanceHandler(onAssign: { [self] tps in
            assign(tps, startOffsets: startOffsets)
        }, onRevoke: { [self] tps in
            // With the stop: the revoke that closing the consumer raises after a stop must not retry for ever.
            core.close(Set(tps.map(\.partition)), sinks: sinks, stop: stop)
            for tp in tps { committedPositions[tp] = nil }
            assignment.subtract(tps)
        })
        let consumer = try KafkaConsumer(config: config, logger: logger, rebalance: handler)
        warnAboutMissingInputs(kafka: kafka)
        try consumer.subscribe(options.topics.values.sorted())
        var lastCheckpoint = ContinuousClock.now
        var lastMessage = ContinuousClock.now
        var lastReport = ContinuousClock.now
        var lastStallCheck = ContinuousClock.now
        var lastProbe = ContinuousClock.now
        var fruitlessRestarts = 0  // stall restarts since messages last came
        var reportedTaken = 0
        // A batch run (`exitWhenIdle`) whose cluster stopped answering: it cannot tell the end of the input from
        // the outage, so it neither waits for ever nor exits as done. After the same wait as a cluster never
        // reached, it stops with its state checkpointed as far as its outputs were delivered, and fails.
        let unreachableLimit = options.exitWhenIdle.map { max($0, options.unreachableGrace) }
        var clusterLost: ClusterLostError?
        // A checkpoint that cannot deliver its outputs because no broker answers is given up at its first failed
        // try once the consumer is stopping (Ctrl-C: nothing is lost, the next run applies those events again), and
        // for a batch run once the cluster has been gone for its limit. Weak, and cleared at the end: the core
        // outlives this run, and a consumer it kept would go on talking to the cluster (the demo's broker, stopped
        // after the run, was then reported unreachable).
        core.giveUpCheckpointsWhen = { [weak consumer] in
            guard let since = consumer?.unreachableSince else { return false }
            return stop.isStopped || unreachableLimit.map { ContinuousClock.now - max(since, started) >= $0 } ?? false
        }
        core.whileRetrying = { [weak consumer, weak producer, core, reporter] in reporter.report(core, rate: 0, consumer: consumer, outputs: producer) }
        defer {
            core.giveUpCheckpointsWhen = nil
            core.whileRetrying = nil
        }
        // Closed before the line above runs (defers run last first), whichever way the run ends: the close revokes
        // the partitions, and their last checkpoint follows the same rule.
        defer { consumer.close() }
        while !stop.isStopped {
            let wasAssigned = !core.partitions.isEmpty
            let messages = try consumer.poll(maxMessages: options.pollBatch, timeout: .milliseconds(100), includeHeaders: options.probe != nil)
            if let loadError { throw loadError }
            if let fatal = core.fatalSinkError { throw fatal }
            if !wasAssigned && !core.partitions.isEmpty { lastMessage = ContinuousClock.now }  // idle time counts from assignment
            let outputs = core.apply(messages, startMs: startMs)
            do { try core.send(outputs, to: sinks) } catch {
                // No checkpoint covers what is in flight now (see `ConsumerCore.send`): dropped knowingly.
                abandonOutputs(producer)
                throw error
            }
            if let probe = options.probe { for m in messages { probe.applied(m) } }
            let now = ContinuousClock.now
            if !messages.isEmpty {
                lastMessage = now
                fruitlessRestarts = 0
            }
            core.releaseQuietAlertSources(now: now)
            if let until = options.until, reachedUntil(until, consumer: consumer, now: now) {
                logger.notice("every assigned partition is past \(until) or at its end: stopping")
                break
            }
            if core.checkpointDueByCount || now - lastCheckpoint >= options.checkpointInterval {
                core.checkpointAll(sinks: sinks, stop: stop)
                if let fatal = core.fatalSinkError { throw fatal }
                commitForMonitoring(consumer)
                lastCheckpoint = ContinuousClock.now
            }
            // A batch run (`exitWhenIdle`) that never reached the cluster: it gives up instead of waiting for ever
            // (a mistyped address hung the run). A cluster still starting gets at least `unreachableGrace`.
            // (Counted from this run's start at the earliest: the state is shared by the process's clients.)
            if let unreachableLimit, let since = consumer.unreachableSince.map({ max($0, started) }), now - since >= unreachableLimit {
                guard everAssigned else {
                    throw KafkaError(kind: .timeout, code: KafkaErrorCode.allBrokersDown,
                                     message: "no broker answered for \(Int((now - since).seconds)) s and no partition was ever assigned; gave up, as a run that exits when idle")
                }
                clusterLost = ClusterLostError(seconds: Int((now - since).seconds))
                break
            }
            // While no broker answers, ask for metadata now and then: the first answer ends the wait (one line).
            if consumer.unreachableSince != nil && now - lastProbe >= .seconds(2) {
                lastProbe = now
                consumer.probeCluster()
            }
            if now - lastReport >= options.reportInterval {
                let taken = core.summary.taken
                let m = reporter.report(core, rate: Double(taken - reportedTaken) / (now - lastReport).seconds, consumer: consumer, outputs: producer)
                let worst = m.lag.max { $0.value < $1.value }
                if let waiting = m.clusterWaitingSeconds {
                    logger.info("waiting for the cluster", metadata: [
                        LogKey.waitingSeconds: "\(Int(waiting))", LogKey.accepted: "\(m.summary.accepted)", LogKey.asOf: "\(m.asOf?.description ?? "-")",
                    ])
                } else {
                    logger.info("consuming", metadata: m.progressMetadata.merging([
                        LogKey.lagTotal: "\(m.totalLag)", LogKey.lagMax: "\(worst.map { "\($0.key)=\($0.value)" } ?? "-")",
                        LogKey.partitions: "\(PartitionRanges(core.openPartitions))",
                    ]) { $1 })
                }
                lastReport = now
                reportedTaken = taken
            }
            // A quiet spell: check with the brokers that every partition really is at its end. librdkafka's
            // fetcher has been seen to stop on a partition after broker faults while its cached watermarks
            // said it was caught up; a seek to the next offset to apply restarts it.
            let quiet = now - lastMessage
            // Quiet because no broker answers is not idle: the end of the input cannot be told from an outage.
            let idleExit = consumer.unreachableSince == nil && options.exitWhenIdle.map { quiet >= $0 } ?? false
            if !core.partitions.isEmpty && (idleExit || (quiet >= options.stallCheckInterval && now - lastStallCheck >= options.stallCheckInterval)) {
                lastStallCheck = now
                let restarted = restartStalledPartitions(consumer)
                if restarted > 0 && fruitlessRestarts < 3 {
                    fruitlessRestarts += 1
                    lastMessage = ContinuousClock.now
                } else if idleExit {
                    if restarted > 0 { logger.error("partitions still behind after \(fruitlessRestarts) restarts; exiting as idle anyway") }
                    break
                }
            }
        }
        if let clusterLost {
            // Outputs still in flight cannot be delivered, so no checkpoint can cover them: the state stays at the
            // last checkpoint, and the next run applies those events again and sends their outputs.
            if producer.statistics.inFlight == 0 { core.checkpointAll(sinks: sinks, stop: stop) }
            consumer.close()
            abandonOutputs(producer)
            core.release()
            reporter.report(core, rate: 0, consumer: consumer, outputs: producer)
            core.summary.seconds = (ContinuousClock.now - started).seconds
            throw clusterLost
        }
        core.checkpointAll(sinks: sinks, stop: stop)
        if let fatal = core.fatalSinkError { throw fatal }
        // A last checkpoint given up (stopped while no broker answers) leaves outputs in flight that no checkpoint
        // covers: they are dropped with the producer, and the next run sends them again.
        let complete = core.checkpointGaveUp == nil
        // The group's offsets are for monitoring: not waited for while no broker answers (the commit would fail).
        if complete && consumer.unreachableSince == nil { commitForMonitoring(consumer, wait: true) }
        core.release()
        if complete { try producer.flush(timeout: .seconds(30)) }
        reporter.report(core, rate: 0, consumer: consumer, outputs: producer)
        consumer.close()
        if !complete { abandonOutputs(producer) }
        core.summary.seconds = (ContinuousClock.now - started).seconds
    }

    /// Drops the outputs that no checkpoint covers (the next run sends them again), saying so, instead of
    /// librdkafka's warning of messages left in the queue when the producer closes.
    private func abandonOutputs(_ producer: KafkaProducer) {
        let dropped = producer.abandonUndelivered()
        if dropped > 0 { logger.notice("\(dropped) outputs not delivered are dropped: no checkpoint covers them, and the next start sends them again") }
    }

    /// Commits the checkpointed offsets to the group (when they moved), for lag tools; the checkpoints stay
    /// what the consumer starts from. A failure is logged, never fatal.
    private func commitForMonitoring(_ consumer: KafkaConsumer, wait: Bool = false) {
        let positions = core.checkpointedPositions
        let moved = positions.filter { committedPositions[$0.key] != $0.value }
        guard !moved.isEmpty else { return }
        do {
            try consumer.commit(moved, wait: wait)
            committedPositions.merge(moved) { $1 }
        } catch {
            logger.notice("cannot commit offsets to the group for monitoring: \(error)")
        }
    }

    /// The group gave this consumer partitions: opens them and says where each starts.
    private func assign(_ tps: [TopicPartition], startOffsets: [TopicPartition: Int64]) -> [TopicPartition: KafkaOffset] {
        if !tps.isEmpty {
            options.probe?.assigned()
            everAssigned = true
        }
        assignment.formUnion(tps)
        let payments = tps.filter { $0.topic == options.paymentsTopic }.map(\.partition)
        core.adoptAlertState(for: Set(payments))
        core.holdAlertSources(payments, now: .now)
        do { try core.open(tps.map(\.partition)) } catch { loadError = error }
        var offsets: [TopicPartition: KafkaOffset] = [:]
        for tp in tps {
            guard core.partitions[tp.partition] != nil else {
                offsets[tp] = .end  // its checkpoint is unusable: the loop stops with `loadError`
                continue
            }
            offsets[tp] = core.nextOffset(tp).map { KafkaOffset($0) } ?? startOffsets[tp].map { KafkaOffset($0) } ?? .beginning
        }
        logger.info("assigned", metadata: [LogKey.partitions: "\(TopicPartitionRanges(tps))"])
        return offsets
    }

    /// With `options.until`: whether every assigned topic-partition has had a message after it, or (looked at
    /// once a second, once the clock is past it too) is at its end as far as the watermarks cached from its
    /// fetches say. Then nothing more up to that time is to come, in time order: the run is done. Its
    /// checkpoints stay at each partition's first message after the time (see `ConsumerCore.hold`).
    private func reachedUntil(_ until: Timestamp, consumer: KafkaConsumer, now: ContinuousClock.Instant) -> Bool {
        guard !assignment.isEmpty, !core.partitions.isEmpty else { return false }
        let open = assignment.filter { !core.isPastUntil($0) }
        if open.isEmpty { return true }
        guard Int64(Date().timeIntervalSince1970 * 1000) > until.ms, now - lastEndCheck >= .seconds(1) else { return false }
        lastEndCheck = now
        let marks = consumer.cachedWatermarks(Array(open))
        let positions = consumer.positions()
        return open.allSatisfy { tp in
            guard let m = marks[tp] else { return false }
            return (core.nextOffset(tp) ?? positions[tp]?.position ?? m.low) >= m.high
        }
    }

    /// Asks the brokers for the end of every assigned partition and seeks each one that has messages beyond
    /// the next offset to apply back to that offset; returns how many it restarted.
    func restartStalledPartitions(_ consumer: KafkaConsumer) -> Int {
        guard let assigned = try? consumer.assignment(), !assigned.isEmpty else { return 0 }
        var restarted = 0
        for (tp, marks) in consumer.queryWatermarks(assigned, timeout: .seconds(5)) {
            guard core.partitions[tp.partition] != nil else { continue }
            let next = core.nextOffset(tp) ?? marks.low
            guard marks.high > max(next, marks.low) else { continue }
            logger.warning("\(tp) has \(marks.high - next) messages after offset \(next) but none came: restarting its fetch there")
            do {
                try consumer.seek(tp, to: KafkaOffset(max(next, marks.low)))
                restarted += 1
                core.summary.stalledPartitionRestarts += 1
            } catch {
                logger.warning("could not restart \(tp): \(error)")
            }
        }
        return restarted
    }

    /// Names the input topics the cluster does not have at start (a misspelt `--topic-prefix`, a replay not started
    /// yet): the consumer waits for them, and a batch run would otherwise end with nothing read and nothing said.
    /// Silent when the cluster cannot be asked (its outage is reported as such). Before subscribing: a cluster that
    /// creates topics on first use (the embedded broker) creates them as the subscription asks for them.
    func warnAboutMissingInputs(kafka: KafkaConfig) {
        guard let listed = try? KafkaAdmin(config: kafka, logger: logger).metadata(timeout: .seconds(3)) else { return }
        let names = Set(listed.map(\.name))
        let missing = options.topics.values.filter { !names.contains($0) }.sorted()
        guard !missing.isEmpty else { return }
        let line = "input topic\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) not on the cluster at start "
            + "(its topics: \(Topics.listed(names))): consuming what there is and waiting for "
            + (missing.count == 1 ? "it" : "them")
        logger.warning("\(line)")
    }

    /// Where each input partition starts at `time` (see `TimeSeek`); empty where the cluster cannot say,
    /// and those partitions are scanned from the earliest offset with earlier messages skipped.
    func lookUpStartOffsets(at time: Timestamp, kafka: KafkaConfig) -> [TopicPartition: Int64] {
        var partitions: [TopicPartition] = []
        do {
            let found = try KafkaAdmin(config: kafka, logger: logger).partitions(of: Array(options.topics.values))
            for (name, ps) in found { partitions += ps.map { TopicPartition(name, $0) } }
        } catch {
            logger.notice("cannot list the input partitions (\(error)); scanning from the earliest offset and skipping messages before \(time)")
            return [:]
        }
        return TimeSeek.offsets(at: time, partitions: partitions, kafka: kafka, logger: logger) ?? [:]
    }
}

/// A batch run (`exitWhenIdle`) that reached its cluster and then heard from no broker for as long as it waits
/// for one at the start: it stopped without knowing whether it had reached the end of its input.
public struct ClusterLostError: Error, CustomStringConvertible {
    /// How long no broker had answered.
    public var seconds: Int
    public var description: String {
        "no broker answered for \(seconds) s; stopped before knowing whether every partition was read to its end. "
            + "The state is checkpointed as far as it was applied and its outputs delivered: the same command goes on from there"
    }
}
