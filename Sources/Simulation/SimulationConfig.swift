import Synchronization
import Events

/// Every probability and price of the simulated business. Loaded from `config/baseline.yaml` with a
/// scenario's overrides on top; the YAML files say which public figure each value is calibrated on.
public struct SimulationConfig: Codable, Sendable, Equatable {
    public var prices: Prices
    public var customers: Customers
    public var conversion: Conversion
    public var engagement: Engagement
    public var payments: Payments
    public var churn: Churn
    public var planChanges: PlanChanges
    public var incidents: [Incident]
    public var signupBursts: [SignupBurst]

    public struct Prices: Codable, Sendable, Equatable {
        public var standard: Cents
        public var premium: Cents
        public var enterprise: Cents
        public var currency: String
        public func mrr(_ plan: Plan) -> Cents {
            switch plan {
            case .free: 0
            case .standard: standard
            case .premium: premium
            case .enterprise: enterprise
            }
        }
    }

    public struct Customers: Codable, Sendable, Equatable {
        /// Relative weight of signups at the end of the period vs. its start (growth).
        public var growth: Double
        public var midMarketShare: Double
        public var industries: [String: Double]
        public var countries: [String: Double]
        public var channels: [String: Double]
    }

    public struct Conversion: Codable, Sendable, Equatable {
        /// Share of signups that ever start a paid subscription.
        public var paidShare: Double
        public var midMarketPaidShare: Double
        /// How many times as likely an activated customer is to convert as one that is not (the shares above
        /// stay the averages).
        public var activatedMultiplier: Double
        /// Days from signup to the paid start: uniform in [min, max].
        public var daysToConvertMin: Double
        public var daysToConvertMax: Double
        /// Plan mix of conversions, by company size.
        public var smbPlans: [String: Double]
        public var midMarketPlans: [String: Double]
    }

    public struct Engagement: Codable, Sendable, Equatable {
        /// Share of customers that ever reach a core-value feature within 14 days.
        public var activationRate: Double
        /// Share of paying customers that never use core features (zombies).
        public var zombieShare: Double
        /// Median days to first core use for those who activate.
        public var medianTtvDays: Double
        /// Sessions per week of an engaged customer, and of a non-activated one.
        public var sessionsPerWeek: Double
        public var inactiveSessionsPerWeek: Double
        public var eventsPerSessionMax: Int
        /// Share of a session's feature events that are core-value features, once activated.
        public var coreShare: Double
        public var coreFeatures: [String]
        public var otherFeatures: [String]
        /// Days before a voluntary cancellation over which engagement decays to `decayFloor` of normal.
        public var decayDays: Double
        public var decayFloor: Double
        /// Probability of a cancel intent before a voluntary churn, and in the week after a failed payment.
        public var cancelIntentBeforeChurn: Double
        public var cancelIntentAfterFailure: Double
        /// Monthly probability of a cancel intent without either cause.
        public var cancelIntentBaseMonthly: Double
        /// Days before a voluntary cancellation in which its cancel intent falls (uniform 1...max).
        public var cancelIntentLeadDaysMax: Double
        /// Spread of customers' latent health: a log-normal multiplier (mean 1, this sigma of its log) of
        /// their sessions per week; the voluntary churn hazard falls with it (`churn.healthElasticity`).
        public var healthSigma: Double
    }

    public struct Payments: Codable, Sendable, Equatable {
        /// Probability that a payment attempt fails, per plan.
        public var failureRate: [String: Double]
        /// Mix of failure reasons.
        public var reasons: [String: Double]
        /// Days after the first failure at which retries run.
        public var retryDays: [Double]
        /// Success probability of a retry of a soft decline.
        public var softRetrySuccess: Double
        /// Probability that a customer with a hard decline updates the card, and days until they do.
        public var cardUpdateAfterHard: Double
        public var cardUpdateDaysMax: Double
        /// Success probability of the attempt after a card update.
        public var successAfterCardUpdate: Double
        /// Monthly probability of an unprompted payment method update.
        public var spontaneousMethodUpdateMonthly: Double
        /// Share of customers whose first attempts fail `fragileMultiplier` times as often as the others'
        /// (the plan's `failureRate` stays the mean over all customers).
        public var fragileShare: Double
        public var fragileMultiplier: Double
        /// Retry success and card updates after a hard decline scale with health^this (normalised to keep
        /// the configured means): customers who use the product fix their payment; disengaged ones let it lapse.
        public var recoveryHealthElasticity: Double
    }

    public struct Churn: Codable, Sendable, Equatable {
        /// Monthly voluntary churn probability per plan (before the engagement multiplier).
        public var monthlyVoluntary: [String: Double]
        /// Multiplier of the hazard for customers that never activated.
        public var unactivatedMultiplier: Double
        /// The voluntary hazard is proportional to health^-elasticity (normalised so that the mean over
        /// customers stays `monthlyVoluntary`): healthier, busier accounts churn less.
        public var healthElasticity: Double
        /// Monthly chance that a paying account with no feature use in the last 30 days cancels, and one
        /// with use but no core-value use (a zombie); on top of the hazard above.
        public var idleMonthly: Double
        public var zombieMonthly: Double
        /// Per plan, a multiplier of those two chances (an expensive unused plan is cut first).
        public var unusedPlanMultiplier: [String: Double]
        /// Probability that a churned customer comes back, and months until then (uniform 1...max).
        public var reactivationShare: Double
        public var reactivationMonthsMax: Int
    }

    public struct PlanChanges: Codable, Sendable, Equatable {
        public var monthlyUpgrade: Double
        public var monthlyDowngrade: Double
    }

    /// An injected outage: inside the window, attempts in scope fail at `failureRate` with `reason`.
    public struct Incident: Codable, Sendable, Equatable {
        public var name: String
        /// Days after the simulation start, and length in hours.
        public var startDay: Double
        public var hours: Double
        public var plan: String?
        public var reason: String
        public var failureRate: Double
    }

    /// Extra signups concentrated in a window (a sales event).
    public struct SignupBurst: Codable, Sendable, Equatable {
        public var startDay: Double
        public var days: Double
        /// Share of all customers that sign up inside the burst.
        public var share: Double
    }
}

/// One simulation run: the business (config), its size and period, and the seed.
public struct SimulationParameters: Sendable, Equatable {
    public var config: SimulationConfig
    public var seed: UInt64
    public var customers: Int
    public var start: Timestamp
    public var end: Timestamp
    /// Customers are split into `shardCount` disjoint sets; this run emits set `shardIndex`.
    public var shardIndex: Int
    public var shardCount: Int
    /// A failure-rate storm switched on and off while the stream is generated (load tests); nil keeps
    /// the stream a pure function of the other parameters.
    public var storm: StormControl?
    /// Leaves product-engagement events out of the stream (they are still simulated, so churn, payments and
    /// every other event are exactly those of the full stream): for alert evaluations, which need payments only.
    public var omitEngagement = false

    public static func == (a: Self, b: Self) -> Bool {
        a.config == b.config && a.seed == b.seed && a.customers == b.customers && a.start == b.start && a.end == b.end
            && a.shardIndex == b.shardIndex && a.shardCount == b.shardCount && a.storm === b.storm && a.omitEngagement == b.omitEngagement
    }

    public init(config: SimulationConfig, seed: UInt64, customers: Int, start: Timestamp, end: Timestamp,
                shardIndex: Int = 0, shardCount: Int = 1) {
        self.config = config
        self.seed = seed
        self.customers = customers
        self.start = start
        self.end = end
        self.shardIndex = shardIndex
        self.shardCount = shardCount
    }
}

/// A payment failure storm that a load test turns on for a window of wall-clock time: while it is on,
/// each payment attempt generated fails with `reason` with probability `failureRate` (on top of the
/// normal failures). Safe to switch from another thread.
public final class StormControl: Sendable {
    private let bits = Atomic<UInt64>(0)
    public let reason: FailureReason

    public init(reason: FailureReason) { self.reason = reason }

    /// The storm's failure rate (0: off).
    public var failureRate: Double {
        get { Double(bitPattern: bits.load(ordering: .relaxed)) }
        set { bits.store(newValue.bitPattern, ordering: .relaxed) }
    }
}
