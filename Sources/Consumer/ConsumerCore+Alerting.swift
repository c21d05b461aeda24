import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts

extension ConsumerCore {
    /// The alert engine with its checkpoint: the offsets below which it has seen every payments message, and
    /// the payments partitions (sources) it waits for before event time moves.
    struct Alerting {
        var engine: AlertEngine
        let rules: AlertRules
        /// The rules as sorted JSON: a checkpoint written under other rules is not restored.
        let fingerprint: String
        var offsets: [String: [Int32: Int64]] = [:]
        /// A checkpointed engine, used once it is known to cover exactly this process's payments partitions.
        var pending: AlertStateStore.Loaded?
        /// Payments partitions the engine waits for, since when.
        var heldSince: [Int: ContinuousClock.Instant] = [:]

        init(rules: AlertRules) {
            engine = AlertEngine(rules: rules)
            self.rules = rules
            fingerprint = rules.fingerprint
        }

        /// Payments partitions given up: event time no longer waits for them.
        mutating func forget(sources: Set<Int32>) {
            for p in sources { engine.forget(source: Int(p)) }
        }
    }

    /// Starts alerting: a rebuild forgets the engine's checkpoint and the alerts raised so far; otherwise the
    /// checkpoint is read, to be adopted once the partitions are known (`adoptAlertState`). Drivers call this
    /// before anything else. Throws when the checkpoint is unusable.
    public func start() throws(CheckpointError) {
        if options.rebuild { storage.removeAlerts() }
        guard let rules = options.alertRules else { return }
        var a = Alerting(rules: rules)
        if !options.rebuild {
            do { a.pending = try storage.loadAlertEngine(rules: a.fingerprint) } catch let e as CheckpointError {
                throw e
            } catch {
                throw CheckpointError(partition: -1, file: "alert engine", problem: "\(error)")
            }
        }
        alerting = a
    }

    /// Adopts the checkpointed alert engine if it covers exactly `sources` of the payments topic (several
    /// consumers sharing a state directory each have their own engine; after a rebalance it starts afresh).
    /// With nil, adopts it for whatever partitions it covers (one process reading a whole archive).
    public func adoptAlertState(for sources: Set<Int32>?) {
        guard var a = alerting, let loaded = a.pending else { return }
        a.pending = nil
        let covered = Set((loaded.offsets[options.paymentsTopic] ?? [:]).keys)
        if let sources, covered != sources {
            logger.notice("alert engine checkpoint covers payments partitions \(PartitionRanges(covered)), this consumer has \(PartitionRanges(sources)): starting the engine afresh")
            alerting = a
            return
        }
        var engine = AlertEngine(rules: a.rules, state: loaded.state)
        for s in engine.heldSources { engine.forget(source: s) }
        a.engine = engine
        a.offsets = loaded.offsets
        alerting = a
        logger.info("alert engine resumed from its checkpoint", metadata: [LogKey.alertsOpen: "\(loaded.state.open.count)"])
    }

    /// Payment attempts that came after their minute was evaluated (left out of alerting).
    public var lateAlertAttempts: Int { alerting?.engine.lateAttempts ?? 0 }

    /// What the failure-spike detector can catch now, per scope, for an outage failing `outageRate` of a scope's
    /// first attempts (see `DetectionReach`); empty without alerting or before any payment.
    public func detectionReach(outageRate: Double) -> [DetectionReach] {
        alerting?.engine.detectionReach(outageRate: outageRate) ?? []
    }

    /// Every scope the alert engine watches and whether it fires now (empty without alerting).
    public var alertScopes: [(rule: String, scope: String, firing: Bool)] { alerting?.engine.watchedScopes ?? [] }

    /// Alerting waits for every assigned payments partition (or `alertSourceWait`) before event time moves.
    public func holdAlertSources(_ sources: [Int32], now: ContinuousClock.Instant) {
        guard var a = alerting else { return }
        for p in sources {
            a.engine.hold(source: Int(p))
            a.heldSince[Int(p)] = now
        }
        alerting = a
    }

    /// Stops waiting for payments partitions that sent something, or nothing for `alertSourceWait`.
    public func releaseQuietAlertSources(now: ContinuousClock.Instant) {
        guard var a = alerting, !a.heldSince.isEmpty else { return }
        let held = Set(a.engine.heldSources)
        for (source, since) in a.heldSince where !held.contains(source) || now - since >= options.alertSourceWait {
            if held.contains(source) {
                a.engine.forget(source: source)
                logger.notice("alerting stops waiting for payments partition \(source): nothing from it in \(options.alertSourceWait)")
            }
            a.heldSince[source] = nil
        }
        alerting = a
    }
}
