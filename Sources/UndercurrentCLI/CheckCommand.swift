import Checkpoints
import Consumer
import ArgumentParser
import Foundation
import Marts

/// The data-quality rules of docs/marts.md over the merged marts.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Run the data-quality rules of docs/marts.md on a state directory.")
    @Option(help: "The consumer's state directory.") var stateDir: String
    @Flag(help: "Do not fail when the marts were built on partial history (inputs whose first messages were never seen).") var allowPartialHistory = false
    @OptionGroup var common: CommonOptions

    func run() throws {
        let state = try StartChecks.stateDirectory(stateDir)
        let (snapshot, _) = try state.load()
        let violations = DataQuality.check(snapshot)
        let history = HistoryReport(state.history(), customersWithoutSignup: snapshot.customersWithoutSignup)
        for gap in history.gaps {
            Console.out("partial history: \(gap)")
        }
        if !history.complete {
            Console.out("partial history: \(history.customersWithoutSignup) customers were first seen without their sign-up; their lifetime columns count only what was seen")
        }
        if violations.isEmpty {
            Console.out("check: all data-quality rules hold for \(snapshot.customers.count) customers, as of \(snapshot.asOf?.description ?? "-")"
                        + (history.complete ? "" : "; built on partial history"))
            if !history.complete && !allowPartialHistory { throw ExitCode(1) }
            return
        }
        for v in violations.prefix(50) { Console.out("violation: \(v)") }
        Console.out("check: \(violations.count) violations")
        throw ExitCode(1)
    }
}
