import Foundation
import Marts
import Postgres

/// The sink's tables in schema `undercurrent`: one per mart (the export's name, columns and order, a primary
/// key on the grain), the sink's own bookkeeping (`sink_*`), and views for BI tools. Created and migrated
/// by `ensure`, which brings an older version up with `migrations`.
public enum PostgresSchema {
    public static let schema = "undercurrent"
    static let version = 3
    /// What takes a schema from the version before each key to that version, run in `ensure`'s transaction.
    /// Version 2 drops the index of owners by partition: maintaining it cost a first load of 1,000,000 customers
    /// about 2.5 s. The only query that filters on the partition (rows gone from a partition written whole: a
    /// first load, a rebuild, a crash between a checkpoint and its commit) took as long without it in a first
    /// load, and about 40 ms more (83-109 ms against 41-44) for one partition of twelve among 1,000,000 owners.
    /// Version 3 adds `history_starts` (made by `bookkeeping`, as every version's tables): an older sink would leave
    /// it stale, so it must not write a version 3 schema.
    static let migrations: [Int: String] = [
        2: "DROP INDEX IF EXISTS \(schema).sink_customer_partition_partition",
    ]
    /// The role BI tools are granted (read-only); created when the sink's user may create roles.
    static let readerRole = "undercurrent_reader"
    /// The key of the advisory lock every sink write takes, so that consumers sharing a database write
    /// one at a time (each transaction sees the others' committed partitions).
    static let lockKey: Int64 = 0x756E_6465_7263_7572  // "undercur"

    /// The error of a write that found the write lock taken and did not wait for it (SQLSTATE 55P03, as a lock
    /// timeout: transient).
    static let writeLockBusy = PostgresError(code: .statement, message: "another writer holds the sink's write lock (advisory lock \(lockKey))",
                                             sqlState: "55P03")

    /// Takes the write lock for the transaction under way. Without `wait` only if it is free: another consumer
    /// sharing the database in a write of its own holds it for that write, and the sink, on the consuming thread,
    /// does not wait for it. With `wait` it queues for the lock (fairly, so a busy database cannot starve a
    /// consumer), up to `lock_timeout`.
    static func takeWriteLock(_ db: PostgresConnection, wait: Bool) throws(PostgresError) {
        if wait {
            try db.query("SELECT pg_advisory_xact_lock($1)", [String(lockKey)])
        } else if try db.query("SELECT pg_try_advisory_xact_lock($1)", [String(lockKey)]).rows.first?.first != "t" {
            throw writeLockBusy
        }
    }

    public enum Kind: String, Sendable {
        case text, bigint, double = "double precision", boolean, timestamptz
    }

    /// A mart's columns in export order, with their SQL kind and the grain (primary key).
    public struct Table: Sendable {
        public var name: String
        public var columns: [(name: String, kind: Kind)]
        public var key: [String]
        public var qualified: String { "\(schema).\(name)" }
    }

    /// The kind of an export column, by its name (a test checks every value of a real snapshot fits).
    static func kind(of column: String, in table: String) -> Kind {
        if column.hasSuffix("_at") { return .timestamptz }
        if ["month", "signup_month", "plan", "status", "customer_id", "failure_reason", "decline_type", "last_failure_reason",
            "risk_segment", "risk_reasons"].contains(column) { return .text }
        if ["had_failure", "is_zombie"].contains(column) || (column == "activated" && table == "mart_customer_360") { return .boolean }
        if column.hasSuffix("_rate") || column.hasPrefix("avg_") || column.hasPrefix("engagement_")
            || ["events_per_active_customer", "share_of_failures"].contains(column) { return .double }
        return .bigint
    }

    /// Every mart, from an empty snapshot's table definitions plus customer 360's.
    public static let tables: [Table] = {
        var names: [(String, [String])] = MartSnapshot().tables().map { ($0.name, $0.columns) }
        if let i = names.firstIndex(where: { $0.0 == "mart_customer_360" }) { names[i].1 = MartSnapshot.customer360Columns }
        return names.map { name, columns in
            Table(name: name, columns: columns.map { ($0, kind(of: $0, in: name)) }, key: MartSnapshot.grains[name]!)
        }
    }()

    static var customer360: Table { tables.first { $0.name == "mart_customer_360" }! }

    static func createTable(_ t: Table) -> String {
        let cols = t.columns.map { "\($0.name) \($0.kind.rawValue)\(t.key.contains($0.name) ? " NOT NULL" : "")" }
        // Room in each page for the new version of an updated row (a HOT update: no index entry to add).
        let fill = t.name == "mart_customer_360" ? " WITH (fillfactor = 80)" : ""
        var sql = "CREATE TABLE \(t.qualified) (\(cols.joined(separator: ", ")), PRIMARY KEY (\(t.key.joined(separator: ", "))))\(fill);\n"
        if let docs = MartComments.tables[t.name] {
            sql += "COMMENT ON TABLE \(t.qualified) IS \(literal(docs.table));\n"
            for c in t.columns {
                if let text = docs.columns[c.name] { sql += "COMMENT ON COLUMN \(t.qualified).\(c.name) IS \(literal(text));\n" }
            }
        }
        return sql + "GRANT SELECT ON \(t.qualified) TO \(readerRole);\n"
    }

    static let bookkeeping = """
        CREATE TABLE IF NOT EXISTS \(schema).sink_positions (
            partition integer PRIMARY KEY,
            offsets jsonb NOT NULL,
            accepted bigint NOT NULL,
            duplicates bigint NOT NULL,
            rejected bigint NOT NULL,
            min_event_time timestamptz,
            max_event_time timestamptz,
            rows_as_of timestamptz,
            written_at timestamptz NOT NULL,
            version bigint NOT NULL,
            aggregates bytea NOT NULL);
        ALTER TABLE \(schema).sink_positions ALTER COLUMN aggregates SET STORAGE EXTERNAL;
        COMMENT ON TABLE \(schema).sink_positions IS 'The checkpoint position each input partition''s rows reflect: next offset per input topic, its counts, event-time range, the as-of its customer rows were computed at, and its additive aggregates (binary).';
        CREATE SEQUENCE IF NOT EXISTS \(schema).sink_version;
        CREATE TABLE IF NOT EXISTS \(schema).sink_customer_partition (
            customer_id text PRIMARY KEY,
            partition integer NOT NULL);
        COMMENT ON TABLE \(schema).sink_customer_partition IS 'Which input partition owns each mart_customer_360 row.';
        CREATE TABLE IF NOT EXISTS \(schema).history_starts (
            partition integer NOT NULL,
            topic text NOT NULL,
            first_offset bigint NOT NULL,
            first_event_time timestamptz,
            missed_messages bigint NOT NULL,
            gap text,
            PRIMARY KEY (partition, topic));
        COMMENT ON TABLE \(schema).history_starts IS 'What the marts have not seen: where their history starts in each input topic-partition, as of the rows. missed_messages > 0 (or gap skipped_by_start_time) means the marts were built without that partition''s first messages, and customers who began inside the gap have incomplete histories.';
        COMMENT ON COLUMN \(schema).history_starts.first_offset IS 'The offset of the first message applied.';
        COMMENT ON COLUMN \(schema).history_starts.first_event_time IS 'The event time of the first message applied (with gap skipped_by_start_time, the start time).';
        COMMENT ON COLUMN \(schema).history_starts.missed_messages IS 'Messages before first_offset that were never applied.';
        COMMENT ON COLUMN \(schema).history_starts.gap IS 'Why they were not: deleted (the topic''s retention), skipped_by_start_time (a consumer started at a time), not_in_archive (an archive that begins later); null when none were missed.';

        """

    static let views = """
        CREATE OR REPLACE VIEW \(schema).kpi_monthly AS
        SELECT r.month,
               r.revenue_cents,
               r.paying_customers,
               p.failure_rate AS payment_failure_rate,
               p.avg_attempts_per_invoice AS average_payment_attempts,
               e.cancel_intent_rate,
               m.net_mrr_churn_rate,
               a.activation_rate
        FROM \(schema).mart_revenue_monthly r
        JOIN \(schema).mart_payment_reliability p ON p.month = r.month
        JOIN \(schema).mart_engagement e ON e.month = r.month
        JOIN \(schema).mart_mrr_movements m ON m.month = r.month
        LEFT JOIN \(schema).mart_activation_cohort a ON a.signup_month = r.month
        WHERE r.plan = 'all';
        COMMENT ON VIEW \(schema).kpi_monthly IS 'The dashboard''s executive KPIs, one row per month (docs/marts.md, Executive KPIs). The current month is incomplete.';
        CREATE OR REPLACE VIEW \(schema).kpi_current AS
        SELECT (SELECT max(max_event_time) FROM \(schema).sink_positions) AS as_of,
               count(*) FILTER (WHERE is_zombie) AS zombie_accounts,
               coalesce(sum(mrr_cents) FILTER (WHERE risk_segment IN ('high', 'critical')), 0)::bigint AS mrr_at_risk_cents,
               count(*) FILTER (WHERE risk_segment IN ('high', 'critical')) AS customers_at_risk
        FROM \(schema).mart_customer_360;
        COMMENT ON VIEW \(schema).kpi_current IS 'KPIs of the current state: zombie accounts and the MRR of high and critical risk customers.';
        CREATE OR REPLACE VIEW \(schema).sink_status AS
        SELECT count(*) AS partitions,
               sum(accepted) AS accepted,
               max(max_event_time) AS as_of,
               min(rows_as_of) AS oldest_rows_as_of,
               bool_and(rows_as_of IS NOT DISTINCT FROM (SELECT max(max_event_time) FROM \(schema).sink_positions)) AS rows_current,
               max(written_at) AS last_write,
               NOT EXISTS (SELECT 1 FROM \(schema).history_starts h WHERE h.missed_messages > 0 OR h.gap = 'skipped_by_start_time') AS history_complete,
               (SELECT coalesce(sum(missed_messages), 0)::bigint FROM \(schema).history_starts) AS missed_messages
        FROM \(schema).sink_positions;
        COMMENT ON VIEW \(schema).sink_status IS 'What the tables reflect: partitions written, as-of, whether every partition''s customer rows are computed at that as-of, the last write, and whether the marts were built on every input message since the topics began (history_complete; see history_starts when not).';

        """

    /// The session's staging tables (emptied at each commit): one per mart, the customers' with the owning
    /// partition of new rows, and those owners. Made again after the schema was repaired.
    static func createStages(_ db: PostgresConnection) throws(PostgresError) {
        var sql = ""
        for t in tables {
            let extra = t.name == "mart_customer_360" ? ", owner integer" : ""
            let stage = t.name == "mart_customer_360" ? "sink_stage_customer" : "sink_stage_\(t.name)"
            sql += "DROP TABLE IF EXISTS pg_temp.\(stage); CREATE TEMP TABLE \(stage) (LIKE \(t.qualified)\(extra)) ON COMMIT DELETE ROWS;\n"
        }
        // The owning partition of every customer row staged in this write, kept while the staging table is
        // emptied between chunks.
        sql += "DROP TABLE IF EXISTS pg_temp.sink_stage_owner; CREATE TEMP TABLE sink_stage_owner (customer_id text, owner integer) ON COMMIT DELETE ROWS;\n"
        try db.execute(sql)
    }

    /// Empties every mart and the sink's bookkeeping in one transaction (`--rebuild`): readers see no rows until
    /// the first write, and every partition, this consumer's or another's, is written whole at its next write.
    /// Clearing the positions alone would leave the rows of partitions no consumer writes any more.
    static func empty(_ db: PostgresConnection, waitForLock: Bool) throws(PostgresError) {
        let all = (tables.map(\.qualified) + ["sink_positions", "sink_customer_partition", "history_starts"].map { "\(schema).\($0)" }).joined(separator: ", ")
        try db.execute("BEGIN")
        do throws(PostgresError) {
            try takeWriteLock(db, wait: waitForLock)
            try db.execute("TRUNCATE \(all); COMMIT")
        } catch {
            _ = try? db.execute("ROLLBACK")
            throw error
        }
    }

    static func literal(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Creates the schema and whatever is missing, or checks what exists; a table whose columns are not the
    /// expected ones (altered or dropped by someone) is recreated, and then every partition's position is
    /// cleared so that every consumer rewrites its rows. Returns the tables recreated. The write lock as
    /// `takeWriteLock`.
    @discardableResult
    static func ensure(_ db: PostgresConnection, waitForLock: Bool) throws(PostgresError) -> [String] {
        try db.execute("BEGIN")
        do throws(PostgresError) {
            try takeWriteLock(db, wait: waitForLock)
            try db.execute("CREATE SCHEMA IF NOT EXISTS \(schema)")
            // The role is optional: a user without CREATEROLE still gets its tables.
            let role = try db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [readerRole])
            if role.rows.isEmpty {
                try db.execute("SAVEPOINT role")
                do { try db.execute("CREATE ROLE \(readerRole) NOLOGIN") } catch { try db.execute("ROLLBACK TO SAVEPOINT role") }
            }
            let hasRole = !(try db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [readerRole])).rows.isEmpty
            try db.execute("CREATE TABLE IF NOT EXISTS \(schema).sink_schema_version (version integer NOT NULL)")
            let v = try db.execute("SELECT version FROM \(schema).sink_schema_version")
            let stored = v.rows.first?[0].flatMap { Int($0) }
            if let stored, stored > version {
                // Refused for good (not an outage to wait out): an older sink must not write a newer schema.
                throw PostgresError(code: .rejected, message: "schema \(schema) is at version \(stored), newer than this sink's \(version); upgrade undercurrent")
            }
            if v.rows.isEmpty { try db.execute("INSERT INTO \(schema).sink_schema_version VALUES (\(version))") }
            try db.execute(bookkeeping)
            if let stored, stored < version {
                for step in (stored + 1)...version { if let sql = migrations[step] { try db.execute(sql) } }
                try db.execute("UPDATE \(schema).sink_schema_version SET version = \(version)")
            }
            // Columns as they are now.
            let existing = try db.query("""
                SELECT table_name, string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position)
                FROM information_schema.columns WHERE table_schema = $1 GROUP BY table_name
                """, [schema])
            var found: [String: String] = [:]
            for row in existing.rows { found[row[0]!] = row[1] ?? "" }
            var recreated: [String] = []
            for t in tables {
                let expected = t.columns.map { "\($0.name) \($0.kind.rawValue == "timestamptz" ? "timestamp with time zone" : $0.kind.rawValue)" }.joined(separator: ",")
                guard found[t.name] != expected else { continue }
                if found[t.name] != nil { try db.execute("DROP TABLE \(t.qualified) CASCADE") }
                var ddl = createTable(t)
                if !hasRole { ddl = ddl.split(separator: "\n").filter { !$0.hasPrefix("GRANT") }.joined(separator: "\n") }
                try db.execute(ddl)
                recreated.append(t.name)
            }
            if !recreated.isEmpty {
                // Rows must be written again: no partition's position holds any more.
                try db.execute("DELETE FROM \(schema).sink_positions; DELETE FROM \(schema).sink_customer_partition")
            }
            try db.execute(views)
            if hasRole {
                try db.execute("""
                    GRANT USAGE ON SCHEMA \(schema) TO \(readerRole);
                    GRANT SELECT ON ALL TABLES IN SCHEMA \(schema) TO \(readerRole);
                    """)
            }
            try db.execute("COMMIT")
            return recreated
        } catch {
            _ = try? db.execute("ROLLBACK")
            throw error
        }
    }
}
