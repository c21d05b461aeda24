import Testing

@testable import Events

@Suite struct CalendarTests {
    /// The table behind `fromDays` gives what the computation gives, on every day it covers and beyond both ends.
    @Test func tabulatedDaysEqualComputedOnes() {
        for day in (CivilDate.tableStart - 800)..<(CivilDate.tableStart + 36_525 + 800) {
            let (y, m, d) = CivilDate.fromDays(day)
            #expect((y, m, d) == CivilDate.computeFromDays(day), "day \(day)")
            #expect(CivilDate.toDays(year: y, month: m, day: d) == day)
        }
        #expect(CivilDate.fromDays(CivilDate.tableStart) == (2000, 1, 1))
        #expect(CivilDate.fromDays(CivilDate.tableStart + 36_524) == (2099, 12, 31))
        #expect(CivilDate.fromDays(0) == (1970, 1, 1))
        #expect(CivilDate.fromDays(-1) == (1969, 12, 31))
    }
}
