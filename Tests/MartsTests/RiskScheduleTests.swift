import Events
import Marts
import Testing
import TestSupport

/// `MartState` schedules the time-driven risk re-assessments by customer table row, reading each customer's state in
/// place. Its announcements must be those of the plain way: every customer looked up by id, re-assessed after each
/// of its events, and its next re-assessment kept in dictionaries by id.
@Suite struct RiskScheduleTests {
    struct Announcement: Equatable, CustomStringConvertible {
        var customerID: String
        var previous: RiskModel.Segment
        var segment: RiskModel.Segment
        var asOf: Timestamp
        var description: String { "\(customerID) \(previous) -> \(segment) at \(asOf)" }
    }

    /// The plain schedule, beside a state that announces nothing itself.
    struct PlainSchedule {
        var checks: [Int64: [String]] = [:]
        var checkDay: [String: Int64] = [:]
        var swept: Int64?
        var backlog: [String] = []
        var announced: [String: RiskModel.Segment] = [:]

        mutating func change(_ s: MartState, _ id: String) -> Announcement? {
            guard let asOf = s.maxTime, let c = s.customers[id] else { return nil }
            schedule(id, RiskModel.nextChange(c, asOf: asOf))
            let segment = RiskModel.assess(c, asOf: asOf).segment, previous = announced[id] ?? .low
            guard segment != previous else { return nil }
            announced[id] = segment
            return Announcement(customerID: id, previous: previous, segment: segment, asOf: asOf)
        }

        mutating func timeDriven(_ s: MartState) -> [Announcement] {
            guard let asOf = s.maxTime else { return [] }
            let today = asOf.ms / Timestamp.millisecondsPerDay
            guard let last = swept else {
                swept = today
                backlog = s.customers.keys
                return []
            }
            for _ in 0..<min(backlog.count, 4096) {
                let id = backlog.removeLast()
                if checkDay[id] == nil, let c = s.customers[id] { schedule(id, RiskModel.nextChange(c, asOf: asOf)) }
            }
            guard today > last else { return [] }
            swept = today
            var due: [String] = []
            for day in checks.keys.filter({ $0 <= today }).sorted() {
                due += checks.removeValue(forKey: day)!.filter { id in
                    guard checkDay[id] == day else { return false }
                    checkDay[id] = nil
                    return true
                }
            }
            return due.compactMap { change(s, $0) }
        }

        mutating func schedule(_ id: String, _ at: Int64?) {
            guard let at else {
                checkDay[id] = nil
                return
            }
            let day = at / Timestamp.millisecondsPerDay + 1
            guard checkDay[id] != day else { return }
            checkDay[id] = day
            checks[day, default: []].append(id)
        }
    }

    @Test(arguments: [5, 100_000])
    func announcementsAreThoseOfAPlainScheduleByCustomerID(hotCustomers: Int) {
        var plain = PlainSchedule()
        var s = MartState()
        var expected: [Announcement] = []
        var timeDriven = 0
        for e in history where s.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) == .accepted {
            if let a = plain.change(s, e.customerID) { expected.append(a) }
            let later = plain.timeDriven(s)
            timeDriven += later.count
            expected += later
        }
        let (_, changes) = consume(history, hotCustomers: hotCustomers)
        let got = changes.map { Announcement(customerID: $0.customerID, previous: $0.previous, segment: $0.assessment.segment, asOf: $0.asOf) }
        #expect(expected.count > 100 && timeDriven > 10, "\(expected.count) announcements, \(timeDriven) by time alone")
        #expect(got == expected, "first difference: \(zip(got, expected).first { $0 != $1 }.map { "\($0) against \($1)" } ?? "in length")")
    }
}
