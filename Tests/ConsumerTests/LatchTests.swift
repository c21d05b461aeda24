@testable import Consumer
import Foundation
import Synchronization
import Testing

@Suite struct LatchTests {
    @Test func aClosedLatchWaitsUntilItsDeadlineAndAnOpenOneNot() {
        let latch = Latch()
        #expect(!latch.opened)
        #expect(!latch.wait(until: ContinuousClock.now + .milliseconds(20)))
        latch.open()
        latch.open()
        #expect(latch.opened)
        #expect(latch.wait(until: ContinuousClock.now - .seconds(1)))  // open: true even past the deadline
    }

    /// A waiter on another thread is woken by `open()`, long before its deadline of an hour.
    @Test(.timeLimit(.minutes(1))) func openingWakesAWaiterOnAnotherThread() {
        let latch = Latch(), returned = Latch()
        let result = Mutex<Bool?>(nil)
        let thread = Thread {
            let r = latch.wait(until: ContinuousClock.now + .seconds(3600))
            result.withLock { $0 = r }
            returned.open()
        }
        thread.start()
        latch.open()
        returned.wait()
        #expect(result.withLock { $0 } == true)
    }

    /// `StopSignal.sleep` of an hour returns when another thread stops it; `wait` returns once stopped. (The time
    /// limit only turns a hang into a failure.)
    @Test(.timeLimit(.minutes(1))) func aStopEndsASleepAndAWait() {
        let stop = StopSignal(handleSignals: false)
        let slept = Latch()
        let thread = Thread {
            stop.sleep(.seconds(3600))
            stop.wait()
            slept.open()
        }
        thread.start()
        stop.stop()
        slept.wait()
        #expect(stop.isStopped)
    }
}

@Suite struct StopSignalTests {
    /// A signal stops gracefully the first time; a second ends the process at once, also when a quick double
    /// Ctrl-C reaches the handler as one event of two signals (it was taken for one).
    @Test func aSecondSignalInsistsEvenWhenBothArriveInOneEvent() {
        #expect(!StopSignal.insists(alreadyStopped: false, signals: 1))
        #expect(StopSignal.insists(alreadyStopped: true, signals: 1))
        #expect(StopSignal.insists(alreadyStopped: false, signals: 2))
    }

    /// The flag set by `stop()` runs the handlers once, and a handler added later at once.
    @Test func stopRunsEachHandlerOnce() {
        let stop = StopSignal(handleSignals: false)
        let calls = Mutex(0)
        stop.onStop { calls.withLock { $0 += 1 } }
        stop.stop()
        stop.stop()
        #expect(stop.isStopped && calls.withLock { $0 } == 1)
        stop.onStop { calls.withLock { $0 += 1 } }
        #expect(calls.withLock { $0 } == 2)
    }
}
