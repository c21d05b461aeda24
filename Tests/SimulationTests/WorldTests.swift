import Events
import Foundation
import Simulation
import Testing
import TestSupport
import Config


/// The repository's config/baseline.yaml, loaded as the CLI loads it, with a tweak on top.
func testConfig(_ tweak: (inout SimulationConfig) -> Void = { _ in }) -> SimulationConfig {
    var c = try! ConfigLoader.load(scenario: "baseline", configDir: repoConfig)
    tweak(&c)
    return c
}

let simStart = Timestamp(year: 2024, month: 1, day: 1)

func parameters(customers: Int = 400, months: Int = 24, seed: UInt64 = 7, shard: (Int, Int) = (0, 1),
                _ tweak: (inout SimulationConfig) -> Void = { _ in }) -> SimulationParameters {
    SimulationParameters(config: testConfig(tweak), seed: seed, customers: customers, start: simStart,
                         end: simStart.addingMonths(months), shardIndex: shard.0, shardCount: shard.1)
}

func events(_ p: SimulationParameters) throws -> [Event] { Array(try World(p)) }

/// Where two streams first differ (a short failure message, not two whole streams); nil when one is a
/// prefix of the other.
func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
    zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset
}

@Suite struct WorldTests {
    @Test func sameSeedGivesByteIdenticalStreams() throws {
        let a = try events(parameters()).flatMap { EventEncoder.encode($0) }
        let b = try events(parameters()).flatMap { EventEncoder.encode($0) }
        #expect(a == b)
        let c = try events(parameters(seed: 8)).flatMap { EventEncoder.encode($0) }
        #expect(a != c)
    }

    /// The producers' path (`peekNext`, then `encodeNext` or `skipNext`) against `next()` and the encoder:
    /// the same events, routed by the same facts, encoded to the same bytes, whichever events are skipped.
    @Test func encodingInPlaceGivesTheStreamThatNextGives() throws {
        let p = parameters(customers: 300, months: 18)
        let reference = try events(p)
        for skipping in [nil, InputTopic.engagement, .payments] {
            var world = try World(p)
            var encoder = EventEncoder.Reusable()
            var i = 0
            while let next = world.peekNext() {
                guard i < reference.count else { break }
                let e = reference[i]
                #expect(next == NextEvent(type: e.type, customerID: e.customerID, occurredAt: e.occurredAt))
                if next.topic == skipping {
                    let moved = world.skipNext()
                    #expect(moved)
                } else {
                    var out: [UInt8] = [1, 2]  // appended to, not replaced
                    let encoded = world.encodeNext(&encoder, into: &out)
                    #expect(encoded)
                    #expect(out == [1, 2] + EventEncoder.encode(e), "event \(i)")
                }
                i += 1
            }
            #expect(i == reference.count)
            #expect(world.emitted == reference.count)
            var out: [UInt8] = []
            let encodedAtEnd = world.encodeNext(&encoder, into: &out), skippedAtEnd = world.skipNext()
            #expect(!encodedAtEnd && out.isEmpty && !skippedAtEnd && world.peekNext() == nil)
        }
        // Mixed with `next()`: each call moves past one event.
        var world = try World(p)
        var encoder = EventEncoder.Reusable()
        for (i, e) in reference.prefix(3000).enumerated() {
            switch i % 3 {
            case 0:
                let got = world.next()
                #expect(got == e)
            case 1:
                var out: [UInt8] = []
                let encoded = world.encodeNext(&encoder, into: &out)
                #expect(encoded && out == EventEncoder.encode(e))
            default:
                let moved = world.skipNext()
                #expect(moved)
            }
        }
    }

    /// A plain reference for the windowed merge: each customer simulated alone (a shard of one), and all
    /// their events sorted by (time, customer index, place in the customer's own stream).
    @Test func theStreamIsEveryCustomerAloneMergedByTimeThenCustomer() throws {
        let n = 60
        let whole = try events(parameters(customers: n))
        var reference: [(Event, Int, Int)] = []
        for c in 0..<n {
            for (k, e) in try events(parameters(customers: n, shard: (c, n))).enumerated() { reference.append((e, c, k)) }
        }
        reference.sort { ($0.0.occurredAt.ms, $0.1, $0.2) < ($1.0.occurredAt.ms, $1.1, $1.2) }
        #expect(whole.count == reference.count)
        #expect(firstDifference(whole, reference.map(\.0)) == nil)
    }

    /// The window's size groups the work; the stream stays the same, down to windows of one event (whose
    /// length falls to a second) and up to windows far longer than any gap between events.
    @Test func theWindowSizeNeverChangesTheStream() throws {
        let p = parameters(customers: 250, months: 14)
        let reference = try events(p).map { EventEncoder.encode($0) }
        for size in [1, 7, 200, 1_000_000] {
            let got = Array(try World(p, windowEvents: size)).map { EventEncoder.encode($0) }
            #expect(got.count == reference.count, "windows of \(size) events")
            #expect(firstDifference(got, reference) == nil, "windows of \(size) events")
        }
    }

    @Test func shardsAreDisjointAndTheirUnionIsTheWhole() throws {
        let whole = try events(parameters())
        var union: [String: Event] = [:]
        for i in 0..<3 {
            for e in try events(parameters(shard: (i, 3))) {
                #expect(union[e.eventID] == nil, "event \(e.eventID) in two shards")
                union[e.eventID] = e
            }
        }
        #expect(union.count == whole.count)
        for e in whole { #expect(union[e.eventID] == e) }
    }

    @Test func streamIsInEventTimeOrderAndEveryEventValidates() throws {
        var last = Timestamp(ms: 0)
        var ids = Set<String>()
        let p = parameters()
        for e in try World(p) {
            #expect(e.occurredAt >= last)
            #expect(e.occurredAt >= p.start && e.occurredAt < p.end)
            last = e.occurredAt
            #expect(ids.insert(e.eventID).inserted)
            let bytes = EventEncoder.encode(e)
            let decoded = EventDecoder.decode(bytes, topic: e.topic, key: Array(e.customerID.utf8))
            #expect((try? decoded.get()) == e)
        }
    }

    @Test func causalityRulesHoldForEveryCustomer() throws {
        let all = try events(parameters(customers: 600))
        let byCustomer = Dictionary(grouping: all, by: \.customerID)
        for (customer, evs) in byCustomer {
            // signed_up first, exactly once.
            #expect(evs.first?.type == .customerSignedUp, "\(customer)")
            #expect(evs.filter { $0.type == .customerSignedUp }.count == 1)
            var issued: [String: Timestamp] = [:]
            var attempts: [String: [Int]] = [:]
            var closed: [String: EventType] = [:]
            var lastAttemptFinal: [String: Bool] = [:]
            var subscribed = false
            var uncollectiblePending = false
            for e in evs {
                switch e.payload {
                case .subscriptionStarted:
                    #expect(!subscribed, "\(customer): start while subscribed")
                    subscribed = true
                case let .subscriptionCanceled(_, _, _, kind):
                    #expect(subscribed)
                    subscribed = false
                    if uncollectiblePending { #expect(kind == .involuntary) }
                    uncollectiblePending = false
                case let .invoiceIssued(inv, _, _, _, _, _, _):
                    #expect(subscribed)
                    #expect(issued[inv] == nil)
                    issued[inv] = e.occurredAt
                case let .paymentSucceeded(_, inv, _, _, _, attempt):
                    #expect(issued[inv].map { $0 <= e.occurredAt } == true)
                    #expect(attempt == (attempts[inv]?.count ?? 0) + 1)
                    attempts[inv, default: []].append(attempt)
                case let .paymentFailed(_, inv, _, _, _, attempt, _, next):
                    #expect(issued[inv].map { $0 <= e.occurredAt } == true)
                    #expect(attempt == (attempts[inv]?.count ?? 0) + 1)
                    #expect(lastAttemptFinal[inv] != true, "attempt after a final one")
                    attempts[inv, default: []].append(attempt)
                    lastAttemptFinal[inv] = next == nil
                case let .invoicePaid(inv, _, _, _, n):
                    #expect(closed[inv] == nil)
                    closed[inv] = .invoicePaid
                    #expect(attempts[inv]?.count == n)
                case let .invoiceUncollectible(inv, _, _, _, n):
                    #expect(closed[inv] == nil)
                    closed[inv] = .invoiceUncollectible
                    #expect(attempts[inv]?.count == n)
                    #expect(lastAttemptFinal[inv] == true)
                    uncollectiblePending = true
                default: break
                }
            }
        }
    }

    @Test func observedRatesAreNearTheConfiguredOnes() throws {
        let all = try events(parameters(customers: 4000, months: 24))
        var first = 0, firstFailed = 0
        var reasons: [FailureReason: Int] = [:]
        var signups = 0, starters = Set<String>()
        for e in all {
            switch e.payload {
            case .customerSignedUp: signups += 1
            case .subscriptionStarted: starters.insert(e.customerID)
            case let .paymentSucceeded(_, _, _, _, _, attempt): if attempt == 1 { first += 1 }
            case let .paymentFailed(_, _, _, _, _, attempt, reason, _):
                if attempt == 1 { first += 1; firstFailed += 1; reasons[reason, default: 0] += 1 }
            default: break
            }
        }
        let failureRate = Double(firstFailed) / Double(first)
        #expect(abs(failureRate - 0.065) < 0.015, "first-attempt failure rate \(failureRate)")
        let insufficient = Double(reasons[.insufficientFunds] ?? 0) / Double(firstFailed)
        #expect(abs(insufficient - 0.45) < 0.08, "insufficient funds share \(insufficient)")
        let conversion = Double(starters.count) / Double(signups)
        // 0.3 for SMB, 0.45 for mid-market (a quarter of signups); late signups may not convert in time.
        #expect(conversion > 0.28 && conversion < 0.36, "paid conversion \(conversion)")
    }

    @Test func incidentRaisesFailuresInsideItsWindowOnly() throws {
        let p = parameters(customers: 3000, months: 12) { c in
            c.incidents = try! JSONDecoder().decode([SimulationConfig.Incident].self, from: Data(#"[{"name":"gw","startDay":200,"hours":120,"plan":"premium","reason":"gateway_timeout","failureRate":0.6}]"#.utf8))
        }
        let world = try World(p)
        let window = world.incidents[0]
        var inside = (0, 0), outside = (0, 0)
        for e in Array(world) {
            var plan: Plan? = nil, failed = false, reason: FailureReason? = nil
            switch e.payload {
            case let .paymentSucceeded(_, _, pl, _, _, _): plan = pl
            case let .paymentFailed(_, _, pl, _, _, _, r, _): plan = pl; failed = true; reason = r
            default: continue
            }
            guard plan == .premium else { continue }
            if e.occurredAt >= window.start && e.occurredAt < window.end {
                inside.0 += 1; if failed && reason == .gatewayTimeout { inside.1 += 1 }
            } else {
                outside.0 += 1; if failed && reason == .gatewayTimeout { outside.1 += 1 }
            }
        }
        let rin = Double(inside.1) / Double(max(inside.0, 1)), rout = Double(outside.1) / Double(max(outside.0, 1))
        #expect(inside.0 >= 20, "attempts in the window: \(inside.0)")
        #expect(rin > 0.4, "gateway_timeout rate inside \(rin)")
        #expect(rout < 0.03, "gateway_timeout rate outside \(rout)")
    }

    @Test func aStormSwitchedOnMidStreamFailsAttemptsFromThenOnAndLeavesEarlierOnesAlone() throws {
        var p = parameters(customers: 800, months: 12)
        let storm = StormControl(reason: .processingError)
        p.storm = storm
        var world = try World(p)
        let plain = try events(parameters(customers: 800, months: 12))
        var before: [Event] = [], after: [Event] = []
        while let e = world.next() {
            if before.count < plain.count / 2 { before.append(e) } else { after.append(e) }
            if before.count == plain.count / 2 && storm.failureRate == 0 { storm.failureRate = 1 }
        }
        // Off: the stream is the stream without a storm.
        #expect(before.map(\.eventID) == plain.prefix(before.count).map(\.eventID))
        // On: after a short lead (actions already drawn), every attempt fails, most with the storm's reason.
        let lead = after.drop { $0.occurredAt < before.last!.occurredAt.adding(ms: 40 * 86_400_000) }
        var attempts = 0, succeeded = 0, stormFailures = 0
        for e in lead {
            switch e.payload {
            case .paymentSucceeded: attempts += 1; succeeded += 1
            case let .paymentFailed(_, _, _, _, _, _, r, _): attempts += 1; if r == .processingError { stormFailures += 1 }
            default: break
            }
        }
        #expect(attempts > 100)
        #expect(succeeded == 0)
        #expect(Double(stormFailures) / Double(attempts) > 0.9)
    }
}

@Suite struct OmitEngagementTests {
    @Test func omittingEngagementLeavesEveryOtherEventAsItWas() throws {
        let config = try ConfigLoader.load(scenario: "payment-incident", configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        var p = SimulationParameters(config: config, seed: 9, customers: 300, start: start, end: start.addingMonths(8))
        let full = Array(try World(p))
        p.omitEngagement = true
        let lean = Array(try World(p))
        #expect(lean.allSatisfy { $0.topic != .engagement })
        #expect(full.contains { $0.topic == .engagement })
        #expect(lean == full.filter { $0.topic != .engagement })
    }
}

@Suite struct BuiltinConfigTests {
    /// The defaults built into the executables are the files of config/ (scripts/gen-builtin-config.py writes them).
    @Test func theBuiltInDefaultsAreTheRepositorysConfigFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: repoConfig.appendingPathComponent("scenarios").path).filter { $0.hasSuffix(".yaml") }
        for name in ["baseline.yaml", "alerts.yaml"] + files.map({ "scenarios/" + $0 }) {
            let onDisk = try String(contentsOf: repoConfig.appendingPathComponent(name), encoding: .utf8)
            let builtIn = try ConfigLocation.builtin.text(name)
            #expect(builtIn.map { $0 + "\n" } == onDisk, "\(name) differs from config/: run python3 scripts/gen-builtin-config.py")
        }
        #expect(ConfigLocation.builtin.scenarios == ConfigLocation.directory(repoConfig).scenarios)
        for scenario in ConfigLocation.builtin.scenarios {
            #expect(try ConfigLoader.load(scenario: scenario, location: .builtin) == ConfigLoader.load(scenario: scenario, configDir: repoConfig))
        }
    }

    @Test func anExplicitDirectoryWithoutBaselineIsAnErrorNotAFallback() throws {
        let empty = tempDir().path
        #expect(throws: ConfigFileError.self) { _ = try ConfigLoader.location(empty, environment: [:]) }
        #expect(throws: ConfigFileError.self) { _ = try ConfigLoader.location(nil, environment: ["UNDERCURRENT_CONFIG_DIR": empty]) }
        #expect(try ConfigLoader.location(repoConfig.path, environment: [:]) == .directory(repoConfig))
    }
}
