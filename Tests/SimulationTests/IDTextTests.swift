import Events
import Testing
import TestSupport

@testable import Simulation

@Suite struct IDTextTests {
    @Test func numbersAndTextAreWrittenAsInterpolationWritesThem() {
        var rng = Xoshiro(seed: 11)
        for _ in 0..<5_000 {
            let width = Int(rng.next() % 20)
            let v = Int(rng.next() >> 1) >> width  // every digit count from 1 to 19
            var t = IDText("cus_")
            t.append(v)
            t.append(ascii: ":")
            t.append(width)
            #expect(t.string == "cus_\(v):\(width)")
            #expect(IDText.digits(v) == String(v).count)
        }
        var big = IDText("")
        big.append(Int.max)
        #expect(big.string == String(Int.max))
    }

    /// Counting up in place gives the number's decimal text at every step, across every carry.
    @Test func countingUpWritesEveryNumber() {
        var t = IDText("cus_000042:")
        let start = t.count
        t.append(0)
        for n in 1...120_000 {
            t.incrementNumber(digitsFrom: start)
            #expect(t.string == "cus_000042:\(n)")
        }
        var nines = IDText("x")
        nines.append(99_999_999)
        nines.incrementNumber(digitsFrom: 1)
        #expect(nines.string == "x100000000")
    }

    /// A prefix with non-ASCII bytes (a configured one could have them) is kept as it is written, before and
    /// after numbers, as is an ASCII one; the result is a valid string either way.
    @Test func textWithNonASCIIBytesIsKeptWhole() {
        for prefix in ["clienté_", "顧客-", "cus_", "ü"] {
            var t = IDText(prefix)
            t.append(42)
            t.append(ascii: ":")
            t.append(7)
            t.append(prefix)
            let expected = "\(prefix)42:7\(prefix)"
            #expect(t.string == expected)
            #expect(t.string.utf8.count == 2 * prefix.utf8.count + 4)
            // Whole characters and scalars, not bytes cut apart.
            #expect(t.string.count == expected.count)
            #expect(Array(t.string.unicodeScalars) == Array(expected.unicodeScalars))
        }
    }

    /// The longest ids the simulator can make fit: a 4-byte prefix and three 19-digit numbers, and a customer
    /// id of the largest index with a 19-digit sequence number.
    @Test func theLongestIdsFit() {
        var three = IDText("in_")
        three.append(Int.max); three.append(ascii: "_"); three.append(Int.max); three.append(ascii: "_"); three.append(Int.max)
        #expect(three.string == "in_\(Int.max)_\(Int.max)_\(Int.max)")
        var event = IDText("cus_\(Int.max)")
        event.append(ascii: ":")
        event.append(Int.max)
        #expect(event.string == "cus_\(Int.max):\(Int.max)")
    }

    /// The simulator's ids keep their documented shapes: `customer:n` with n a number unique within the
    /// customer, and `ses_`/`sub_`/`in_`/`pay_` ids built from the customer's index.
    @Test func simulatedIdsHaveTheirShapes() throws {
        let p = parameters(customers: 60, months: 12, seed: 3)
        var byCustomer: [String: [String]] = [:]
        for e in try World(p) {
            byCustomer[e.customerID, default: []].append(e.eventID)
            let index = Int(e.customerID.dropFirst(4))!
            switch e.payload {
            case let .featureUsed(_, _, session): #expect(session.hasPrefix("ses_\(index)_"))
            case let .subscriptionStarted(sub, _, _): #expect(sub.hasPrefix("sub_\(index)_"))
            case let .invoiceIssued(inv, _, _, _, _, _, _): #expect(inv.hasPrefix("in_\(index)_"))
            case let .paymentFailed(pay, _, _, _, _, _, _, _): #expect(pay.hasPrefix("pay_\(index)_"))
            default: break
            }
        }
        for (customer, ids) in byCustomer {
            // Sequence numbers are assigned when events are decided, not in emission order.
            let numbers = ids.map { id -> Int in
                #expect(id.hasPrefix(customer + ":"))
                return Int(id.dropFirst(customer.count + 1)) ?? -1
            }
            #expect(Set(numbers).count == numbers.count)
            #expect(numbers.allSatisfy { $0 >= 0 })
        }
        #expect(byCustomer.count == 60)
    }
}
