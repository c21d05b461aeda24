import ArgumentParser
import Archives
import Events
import Foundation
import Marts
import Simulation
import Evaluation
import Synchronization
import Config

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-alerts",
        abstract: "Score the alert rules against a scenario's ground truth: detection delay per incident next to an oracle's, and false alerts per month.",
        discussion: """
        Runs the simulation (its engagement events simulated but not emitted, so payments are those of the full \
        stream) through the alert engine in event time, then matches firing alerts to the injected \
        incidents. For each incident it also prints the delay of an oracle sequential test that knows the true \
        baseline and outage rates: its expected delay (ln(1/α) / KL(p₁‖p₀) attempts of the fastest watched scope, \
        α the detector's false-alarm budget per scope and CUSUM, at the scope's attempt rate during the \
        incident), and its delay on the run's own attempts (its log-likelihood ratio summed from the incident's \
        start up to ln(1/α)), and the limit of any test held to --max-false-per-month: the same oracle with that \
        whole budget spent on one scope, its threshold lowered by the overshoot the detector's thresholds allow \
        for; and how long after the incident's end its alerts resolved, and how many \
        firing alerts it raised (a scope that resolved while the outage lasted and fired again counts twice). \
        --sweep runs every listed business size over every --scenarios scenario and checks \
        the goals: every incident the oracle detects within its window on the run's attempts detected within 2× \
        that oracle's delay plus one evaluation step, and at most --max-false-per-month false alerts per \
        simulated month at each size.
        With --seeds each size and scenario runs once per seed (two at a time); the goals must hold in every seed.
        """
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Alert rules file (default: config/alerts.yaml).") var rules: String?
    @Option(help: "Business sizes to sweep, comma-separated (e.g. 10000,30000,300000,2000000); each runs every --scenarios scenario.") var sweep: String?
    @Option(help: "With --sweep: scenarios, comma-separated.") var scenarios = "payment-incident,incident-shapes"
    @Option(help: "With --sweep or --require: most false alerts per simulated month.") var maxFalsePerMonth = 1.0
    @Option(help: "Seeds to run each size and scenario with, comma-separated (default: --seed); the goals must hold in every seed.") var seeds: String?
    @Option(help: "Also sum up every incident-run of each size and scenario (each incident in each seed) against this delay in minutes: how many the detector caught within it, its median and 90th percentile, and how many the limit of any test could catch within it.")
    var within: Double?
    @Flag(help: "Exit 1 unless the goals are met (see above).") var require = false
    @OptionGroup var common: CommonOptions

    func seedList() throws -> [UInt64] {
        guard let seeds else { return [simulation.seed] }
        let list = seeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.count <= 64, list.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--seeds: expected 1 to 64 seeds (non-negative integers), comma-separated; got '\(seeds)'")
        }
        return list.map { $0! }
    }

    func validate() throws {
        _ = try seedList()
        if let sweep {
            let sizes = sweep.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 100 && ($0 ?? 0) <= 50_000_000 }) else {
                throw ValidationError("--sweep: expected business sizes from 100 to 50000000, comma-separated; got '\(sweep)'")
            }
        }
        guard maxFalsePerMonth >= 0 else { throw ValidationError("--max-false-per-month: expected 0 or more") }
        if let within, !(within.isFinite && within > 0 && within <= 525_600) {
            throw ValidationError("--within: expected minutes above 0 and at most 525600, got \(within)")
        }
    }

    func run() throws {
        let rules = try AlertConfig.load(file: self.rules, configDir: simulation.configDir)
        let step = Double(max(1, rules.evaluateEverySeconds / 60))
        let sizes = sweep.map { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } } ?? [simulation.customers]
        let names = sweep == nil ? [simulation.scenario] : scenarios.split(separator: ",").map { String($0) }
        let seedList = try self.seedList()
        var ok = true
        for size in sizes {
            var falseAlerts = 0, months = 0.0
            for name in names {
                let runParams = try seedList.map { seed in
                    var options = simulation
                    options.customers = size
                    options.scenario = name
                    options.seed = seed
                    var p = try options.parameters()
                    p.omitEngagement = true
                    return p
                }
                // The seeds' runs are independent: two at a time, one per core, each with a world of its own.
                let results = Mutex([Result<AlertEvaluation, ConfigError>?](repeating: nil, count: runParams.count))
                let started = ContinuousClock.now
                // Progress: the seeds' mean share of the simulated time (a large size runs for minutes; two seeds run at
                // a time, so the slowest one's share stayed at 0% until the last two started).
                let shares = Mutex([Double](repeating: 0, count: runParams.count))
                let progress = ThrottledProgress()
                let label = "\(size) customers, \(name)\(runParams.count > 1 ? ", \(runParams.count) seeds" : "")"
                let wholeBudget = maxFalsePerMonth
                DispatchQueue.concurrentPerform(iterations: runParams.count) { k in
                    let p = runParams[k]
                    let r = Result { () throws(ConfigError) in
                        AlertEvaluation.run(world: try World(p), rules: rules, start: p.start, end: p.end, wholeBudget: wholeBudget) { share in
                            shares.withLock { $0[k] = share }
                            progress.say { "evaluating \(label): \(Int(shares.withLock { $0.reduce(0, +) / Double($0.count) } * 100))% of the simulated time" }
                        }
                    }
                    results.withLock { $0[k] = r }
                }
                progress.end()
                let runs: [AlertEvaluation]
                do { runs = try results.withLock { $0 }.map { try $0!.get() } } catch { throw ValidationError("\(error)") }
                let seconds = (ContinuousClock.now - started).seconds
                let took = seedList.count > 1 ? "\(seedList.count) seeds evaluated in \(String(format: "%.1f", seconds)) s" : "evaluated in \(String(format: "%.1f", seconds)) s"
                for (seed, result) in zip(seedList, runs) {
                    Console.out("== \(size) customers, \(name)\(seedList.count > 1 ? ", seed \(seed)" : "") (\(took))")
                    Console.out(result.report)
                    falseAlerts += result.falseAlerts.count
                    months += result.months
                }
                for d in SeededDetection.combine(runs.map(\.detections)) {
                    if seedList.count > 1 {
                        func list(_ xs: [Double?], _ none: String) -> String { xs.map { $0.map { String(format: "%.0f", $0) } ?? none }.joined(separator: ", ") }
                        Console.out(String(format: "== %@ over %d seeds: delays %@ min (mean %@); oracle on each seed's attempts %@ min; expected oracle mean %@; "
                                           + "any test within %@ false alert(s) a month: %@ min; resolved %@ h after its end; firing alerts %@",
                                           d.incident.name, seedList.count, list(d.delays, "missed"), d.meanDelay.map { String(format: "%.1f", $0) } ?? "-",
                                           list(d.realizedDelays, "beyond"), d.meanOracle.map { String(format: "%.1f min", $0) } ?? "-",
                                           String(format: "%g", maxFalsePerMonth), list(d.boundDelays, "beyond"),
                                           d.resolvedAfterEndHours.map { $0.map { String(format: "%.1f", $0) } ?? "-" }.joined(separator: ", "),
                                           d.runs.map { "\($0.firings)" }.joined(separator: ", ")))
                    }
                    if !d.meetsGoal(step: step) {
                        ok = false
                        Console.out("  GOAL MISSED: \(d.incident.name) at \(size) customers")
                    }
                }
                if let within {
                    let summary = DelaySummary(runs.flatMap(\.detections), targetMinutes: within)
                    Console.out("== \(size) customers, \(name)\(seedList.count > 1 ? " over \(seedList.count) seeds" : ""): "
                                + summary.line(maxFalsePerMonth: maxFalsePerMonth))
                }
            }
            let perMonth = Double(falseAlerts) / max(months, 0.001)
            if perMonth > maxFalsePerMonth { ok = false }
            Console.out(String(format: "== %d customers: %d false alerts in %.1f simulated months (%.2f per month)%@", size, falseAlerts, months, perMonth,
                               perMonth > maxFalsePerMonth ? " GOAL MISSED" : ""))
        }
        if require && !ok { throw ExitCode(1) }
    }
}

struct EvaluateRiskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-risk",
        abstract: "Score the risk model against ground truth: ROC AUC and top-5% precision for churn in the 60 days after a cut-off."
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Cut-off date, YYYY-MM-DD (default: 60 days before the end of the simulated period).") var cutoff: String?
    @Flag(help: "Exit non-zero unless AUC ≥ 0.80 and the top 5% is at least 3 times as precise as random.") var require = false
    @Option(help: "Also write every scored customer's raw signals and churn label to this CSV file, for analysis.") var signalsOut: String?
    @OptionGroup var common: CommonOptions

    func run() throws {
        try StartChecks.file(signalsOut, "the signals file")
        let params = try simulation.parameters()
        let cut: Timestamp
        if let cutoff {
            guard let d = Day(iso: Array(cutoff.utf8)) else { throw ValidationError("--cutoff: expected YYYY-MM-DD, got '\(cutoff)'") }
            cut = Timestamp(ms: d.days * Timestamp.millisecondsPerDay)
            guard cut > params.start else {
                throw ValidationError("--cutoff: expected a date after the simulated business starts (\(params.start)), got '\(cutoff)'")
            }
        } else {
            cut = params.end.adding(days: -60)
        }
        var rows = ["customer_id," + RiskModel.Signals.csvHeader + ",churned,involuntary"]
        let progress = ThrottledProgress()
        let result = try RiskEvaluation.run(parameters: params, cutoff: cut, signals: signalsOut == nil ? nil : { id, c, kind in
            rows.append(id + "," + RiskModel.signals(c, asOf: cut, forAnalysis: true).csv + (kind == nil ? ",0,0" : kind == .involuntary ? ",1,1" : ",1,0"))
        }, progress: { share in progress.say { "evaluating risk, \(params.customers) customers: \(Int(share * 100))% of the simulated time" } })
        progress.end()
        if let signalsOut {
            try OutputFile.write(Data((rows.joined(separator: "\n") + "\n").utf8), to: signalsOut, what: "the signals file")
        }
        Console.out("\(simulation.scenario), cut-off \(cut): \(result.report)")
        if require && !((result.auc ?? 0) >= 0.8 && (result.lift ?? 0) >= 3) { throw ExitCode(1) }
    }
}
