import Testing
import TestSupport

/// `undercurrent evaluate-risk` on a business too small to judge the model (`RiskEvaluationUndefinedTests`): with
/// `--require` it exits 1; a cut-off before the business starts is a bad flag.
@Suite struct EvaluateRiskCommandTests {
    @Test func aRunTheFiguresCannotJudgeFailsTheRequirement() throws {
        let (status, out) = try BadFlagsTests.run("undercurrent", ["evaluate-risk", "--customers", "5", "--months", "3", "--require",
                                                                   "--config-dir", repoConfig.path])
        #expect(status == 1, "\(out)")
        let (early, text) = try BadFlagsTests.run("undercurrent", ["evaluate-risk", "--customers", "5", "--cutoff", "2020-01-01"])
        #expect(early == 2 && text.contains("--cutoff: expected a date after the simulated business starts"), "\(text)")
    }
}
