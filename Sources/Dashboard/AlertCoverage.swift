import Marts

/// What the failure-spike alerts cover: what the detector can catch now, scope by scope, and the payment attempts
/// it left out as late. The pages, the Markdown report and `/api/alert-reach` say both.
public struct AlertCoverage: Sendable {
    /// The detector's reach at the present volume; nil when it is not known (no alert engine with the sequential
    /// detector has checkpointed in the state directory, or its consumer runs without alerts).
    public var reach: [DetectionReach]?
    /// Payment attempts the alert engine left out because they came after their minute was evaluated (they are in
    /// the marts).
    public var lateAttempts: Int

    public init(reach: [DetectionReach]?, lateAttempts: Int = 0) {
        self.reach = reach
        self.lateAttempts = lateAttempts
    }

    /// Nothing known about the detector.
    public static let unknown = AlertCoverage(reach: nil)
}
