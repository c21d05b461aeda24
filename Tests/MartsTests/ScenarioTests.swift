import Events
import Foundation
import Marts
import Simulation
import Testing
import TestSupport
import Config

/// The scenarios tell the stories their files promise, measured through the marts.
@Suite struct ScenarioTests {
    static func snapshot(_ scenario: String, customers: Int = 2000, months: Int = 18) throws -> (MartSnapshot, [Event]) {
        let config = try ConfigLoader.load(scenario: scenario, configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let events = Array(try World(SimulationParameters(config: config, seed: 21, customers: customers, start: start,
                                                          end: start.addingMonths(months))))
        return (MartSnapshot([martState(events)]), events)
    }

    /// Voluntary cancellations per subscription start, by plan at cancellation.
    static func voluntaryChurnByPlan(_ events: [Event]) -> [Plan: Double] {
        var starts: [Plan: Int] = [:], churns: [Plan: Int] = [:]
        for e in events {
            switch e.payload {
            case let .subscriptionStarted(_, plan, _): starts[plan, default: 0] += 1
            case let .subscriptionCanceled(_, plan, _, .voluntary): churns[plan, default: 0] += 1
            default: break
            }
        }
        return Dictionary(uniqueKeysWithValues: Plan.paid.map { ($0, Double(churns[$0] ?? 0) / Double(max(starts[$0] ?? 0, 1))) })
    }

    static func activationRate(_ s: MartSnapshot) -> Double {
        let cohorts = s.aggregates.cohorts.values.reduce(Cell.zero, &+)
        return Double(cohorts[1]) / Double(cohorts[0])
    }

    static func zombieShareOfPaying(_ s: MartSnapshot) -> Double {
        let asOf = s.asOf!
        let paying = s.customers.values.filter { $0.status == .active || $0.status == .pastDue }
        return Double(paying.filter { $0.isZombie(asOf: asOf) }.count) / Double(paying.count)
    }

    @Test func rescueMissionHasLowActivationPremiumChurningFastestAndManyZombies() throws {
        let (rescue, rescueEvents) = try Self.snapshot("rescue-mission")
        let (baseline, _) = try Self.snapshot("baseline")
        let activation = Self.activationRate(rescue)
        #expect(activation < 0.10, "rescue-mission activation \(activation)")
        #expect(Self.activationRate(baseline) > 0.25)
        let churn = Self.voluntaryChurnByPlan(rescueEvents)
        #expect(churn[.premium]! > churn[.standard]! && churn[.premium]! > churn[.enterprise]!, "voluntary churn by plan \(churn)")
        let zombies = Self.zombieShareOfPaying(rescue)
        #expect(zombies > 0.3, "zombie share of paying customers \(zombies)")
        #expect(zombies > Self.zombieShareOfPaying(baseline) * 1.5)
    }

    @Test func peakLoadPutsItsBurstOfSignupsInItsWeek() throws {
        let (_, events) = try Self.snapshot("peak-load", customers: 1500, months: 14)
        let burstStart = Timestamp(year: 2024, month: 1, day: 1).adding(days: 300)
        let signups = events.filter { $0.type == .customerSignedUp }
        let inBurst = signups.filter { $0.occurredAt >= burstStart && $0.occurredAt < burstStart.adding(days: 7) }.count
        let share = Double(inBurst) / Double(signups.count)
        #expect(share > 0.25 && share < 0.36, "share of signups in the burst week \(share)")
    }
}
