import Checkpoints
import Consumer
import ArgumentParser
import Foundation
import Marts

/// The data-quality rules of docs/marts.md over the merged marts.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Run the data-quality rules of docs/marts.md on a state directory.")
    @Option(help: "The consumer's state directory.") var stateDir: String

    func run() throws {
        let (snapshot, _) = try StateDirectory(stateDir).load()
        let violations = DataQuality.check(snapshot)
        if violations.isEmpty {
            Console.out("check: all data-quality rules hold for \(snapshot.customers.count) customers, as of \(snapshot.asOf?.description ?? "-")")
            return
        }
        for v in violations.prefix(50) { Console.out("violation: \(v)") }
        Console.out("check: \(violations.count) violations")
        throw ExitCode(1)
    }
}
