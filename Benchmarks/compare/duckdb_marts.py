#!/usr/bin/env python3
"""The seed documents' batch pipeline for every mart: load an archive into DuckDB and recompute all ten marts of
docs/marts.md from scratch (customer 360's risk columns included), then write them as `undercurrent marts export`
does: OUT/<mart>.csv, same columns, same row order, same number formats. A plain `diff -r` against the export then
checks the incremental marts against an independent batch computation in another engine.

It reads archives of events that pass the contract's checks (what `undercurrent simulate` and `record` write), and
drops repeated values: under the contract a repeat of an event_id with the same bytes is a duplicate. It does not
re-implement validation, so an archive with events the consumer rejects (a conflicting duplicate among them) differs.
Prints the time taken on stderr: its own (load, queries, writing) and the events read.

Usage: duckdb_marts.py ARCHIVE.ndjson OUT_DIR
"""
import datetime
import os
import sys
import time

import duckdb

DAY = 86_400_000
PAID = ["enterprise", "premium", "standard"]
FIELDS = {
    "event_id": "VARCHAR", "type": "VARCHAR", "occurred_at": "VARCHAR", "customer_id": "VARCHAR", "plan": "VARCHAR",
    "to_plan": "VARCHAR", "amount_cents": "BIGINT", "attempt": "BIGINT", "attempts": "BIGINT", "invoice_id": "VARCHAR",
    "failure_reason": "VARCHAR", "decline_type": "VARCHAR", "core_value": "BOOLEAN", "mrr_cents": "BIGINT",
    "from_mrr_cents": "BIGINT", "to_mrr_cents": "BIGINT", "cancellation": "VARCHAR",
}
SUBSCRIPTION = "type IN ('subscription.started', 'subscription.plan_changed', 'subscription.canceled')"


def label(mi):
    return "%04d-%02d" % (mi // 12, mi % 12 + 1)


def rate(a, b):
    return None if not b else a / b


def cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "%.6f" % v
    return str(v)


def write(out, name, columns, rows):
    with open(os.path.join(out, name + ".csv"), "w") as f:
        f.write(",".join(columns) + "\n")
        for r in rows:
            f.write(",".join(cell(v) for v in r) + "\n")


def main(archive, out):
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    schema = "{" + ",".join(f'"{k}":"{v}"' for k, v in FIELDS.items()) + "}"
    path = archive.replace("'", "''")
    con.execute(f"""
    CREATE TABLE ev AS
    WITH v AS (SELECT DISTINCT value FROM read_json('{path}', format='newline_delimited', columns={{'value':'VARCHAR'}})),
    p AS (SELECT unnest(from_json(value, '{schema}')) FROM v)
    SELECT *,
        epoch_ms(CAST(occurred_at AS TIMESTAMP)) AS ms,
        CAST(substr(occurred_at, 1, 4) AS INTEGER) * 12 + CAST(substr(occurred_at, 6, 2) AS INTEGER) - 1 AS mi,
        occurred_at || event_id AS k   -- event time, ties broken by event_id byte by byte (fixed-width times)
    FROM p""")
    first_mi, last_mi, as_of, events = con.execute("SELECT min(mi), max(mi), max(ms), count(*) FROM ev").fetchone()
    months = list(range(first_mi, last_mi + 1))
    q = lambda sql: con.execute(sql).fetchall()

    # mart_revenue_monthly and both payment-reliability marts: payments once per plan and once under 'all'.
    con.execute("""CREATE TABLE pay AS
        SELECT *, plan AS p FROM ev WHERE type IN ('payment.succeeded', 'payment.failed')
        UNION ALL SELECT *, 'all' AS p FROM ev WHERE type IN ('payment.succeeded', 'payment.failed')""")
    revenue = {(r[0], r[1]): r[2:] for r in q("""
        SELECT mi, p, sum(amount_cents), coalesce(sum(amount_cents) FILTER (attempt = 1), 0),
               coalesce(sum(amount_cents) FILTER (attempt > 1), 0), count(*), count(DISTINCT customer_id)
        FROM pay WHERE type = 'payment.succeeded' GROUP BY mi, p""")}
    rows, previous = [], {}
    for mi in months:
        for p in ["all"] + PAID:
            rev, first, recovered, n, paying = revenue.get((mi, p), (0, 0, 0, 0, 0))
            prev = previous.get(p)
            rows.append([label(mi), p, rev, first, recovered, n, paying, rate(rev - prev, prev) if prev else None])
            previous[p] = rev
    write(out, "mart_revenue_monthly", ["month", "plan", "revenue_cents", "first_attempt_revenue_cents",
          "recovered_revenue_cents", "successful_payments", "paying_customers", "revenue_growth_rate"], rows)

    reliability = {(r[0], r[1]): r[2:] for r in q("""
        SELECT mi, p, count(*), count(*) FILTER (type = 'payment.succeeded'), count(*) FILTER (type = 'payment.failed'),
               count(*) FILTER (attempt = 1), count(*) FILTER (attempt = 1 AND type = 'payment.failed'),
               count(*) FILTER (attempt > 1), count(*) FILTER (attempt > 1 AND type = 'payment.succeeded'),
               count(DISTINCT invoice_id)
        FROM pay GROUP BY mi, p""")}

    def reliability_row(mi, p):
        n, ok, failed, firsts, first_failed, retries, retry_ok, invoices = reliability.get((mi, p), (0,) * 8)
        return [n, ok, failed, rate(failed, n), firsts, first_failed, rate(first_failed, firsts), retries, retry_ok,
                invoices, rate(n, invoices)]

    columns = ["attempts", "succeeded", "failed", "failure_rate", "first_attempts", "first_attempt_failures",
               "first_attempt_failure_rate", "retries", "retry_successes", "invoices_attempted", "avg_attempts_per_invoice"]
    write(out, "mart_payment_reliability", ["month"] + columns,
          [[label(mi)] + reliability_row(mi, "all") for mi in months])
    write(out, "mart_payment_reliability_plan_monthly", ["month", "plan"] + columns,
          [[label(mi), p] + reliability_row(mi, p) for mi in months for p in PAID])

    rows = [[label(mi), reason, decline, n, cents, customers, rate(n, month_failures)] for mi, reason, decline, n, cents,
            customers, month_failures in q("""
        SELECT mi, failure_reason, any_value(decline_type), count(*), sum(amount_cents), count(DISTINCT customer_id),
               sum(count(*)) OVER (PARTITION BY mi)
        FROM ev WHERE type = 'payment.failed' GROUP BY mi, failure_reason ORDER BY mi, failure_reason""")]
    write(out, "mart_failure_reason_monthly", ["month", "failure_reason", "decline_type", "failures",
          "failed_amount_cents", "affected_customers", "share_of_failures"], rows)

    # mart_engagement
    feature = {r[0]: r[1:] for r in q("""
        SELECT mi, count(DISTINCT customer_id), count(*), count(*) FILTER (core_value),
               count(DISTINCT customer_id) FILTER (core_value)
        FROM ev WHERE type = 'feature.used' GROUP BY mi""")}
    con.execute("CREATE TABLE billed AS SELECT DISTINCT mi, customer_id FROM ev WHERE type = 'invoice.issued'")
    con.execute("CREATE TABLE intent AS SELECT DISTINCT mi, customer_id FROM ev WHERE type = 'cancel.intent'")
    con.execute("CREATE TABLE monthly AS SELECT customer_id, mi, count(*) AS n FROM ev WHERE type = 'feature.used' GROUP BY ALL")
    # Each subscription event with the plan and MRR it leaves the customer on (a cancellation: none, 0).
    con.execute(f"""CREATE TABLE subs AS
        SELECT customer_id, mi, k, type,
          CASE type WHEN 'subscription.started' THEN plan WHEN 'subscription.plan_changed' THEN to_plan END AS plan_after,
          CASE type WHEN 'subscription.started' THEN mrr_cents WHEN 'subscription.plan_changed' THEN to_mrr_cents ELSE 0 END
            AS mrr_after
        FROM ev WHERE {SUBSCRIPTION}""")
    billed = dict(q("SELECT mi, count(*) FROM billed GROUP BY mi"))
    intents = dict(q("SELECT mi, count(*) FROM intent GROUP BY mi"))
    both = dict(q("SELECT mi, count(*) FROM billed JOIN intent USING (mi, customer_id) GROUP BY mi"))
    rows = []
    for mi in months:
        active, n, core, core_active = feature.get(mi, (0, 0, 0, 0))
        b, i, bi = billed.get(mi, 0), intents.get(mi, 0), both.get(mi, 0)
        rows.append([label(mi), active, n, core, core_active, rate(n, active), b, i, bi, rate(bi, b)])
    write(out, "mart_engagement", ["month", "active_customers", "feature_events", "core_feature_events",
          "core_active_customers", "events_per_active_customer", "billed_customers", "cancel_intent_customers",
          "billed_cancel_intent_customers", "cancel_intent_rate"], rows)

    # mart_mrr_movements: a start is a reactivation when the customer has a cancellation earlier in event time.
    movements = {r[0]: r[1:] for r in q(f"""
        WITH first_cancel AS (SELECT customer_id, min(k) AS ck FROM ev WHERE type = 'subscription.canceled' GROUP BY 1)
        SELECT mi,
          coalesce(sum(mrr_cents) FILTER (type = 'subscription.started' AND NOT coalesce(k > ck, false)), 0),
          coalesce(sum(mrr_cents) FILTER (type = 'subscription.started' AND coalesce(k > ck, false)), 0),
          coalesce(sum(greatest(to_mrr_cents - from_mrr_cents, 0)) FILTER (type = 'subscription.plan_changed'), 0),
          coalesce(sum(greatest(from_mrr_cents - to_mrr_cents, 0)) FILTER (type = 'subscription.plan_changed'), 0),
          coalesce(sum(mrr_cents) FILTER (type = 'subscription.canceled' AND cancellation = 'voluntary'), 0),
          coalesce(sum(mrr_cents) FILTER (type = 'subscription.canceled' AND cancellation = 'involuntary'), 0)
        FROM ev LEFT JOIN first_cancel USING (customer_id) WHERE {SUBSCRIPTION} GROUP BY mi""")}
    rows, starting = [], 0
    for mi in months:
        new, react, exp, con_, vol, invol = movements.get(mi, (0,) * 6)
        ending = starting + new + react + exp - con_ - vol - invol
        rows.append([label(mi), starting, new, react, exp, con_, vol, invol, ending,
                     rate(vol + invol + con_ - exp, starting)])
        starting = ending
    write(out, "mart_mrr_movements", ["month", "starting_mrr_cents", "new_mrr_cents", "reactivation_mrr_cents",
          "expansion_mrr_cents", "contraction_mrr_cents", "churned_voluntary_mrr_cents",
          "churned_involuntary_mrr_cents", "ending_mrr_cents", "net_mrr_churn_rate"], rows)

    # mart_customer_360, with the risk model's signals at as_of
    d30, d90 = as_of - 30 * DAY, as_of - 90 * DAY
    t30 = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=d30)
    pm = t30.year * 12 + t30.month - 1  # the month of as_of - 30 days: the risk model's monthly baselines end before it
    customers = q(f"""
        WITH invoices AS (
            SELECT customer_id, invoice_id, bool_or(type = 'payment.failed') AS failed,
                   bool_or(type IN ('invoice.paid', 'invoice.uncollectible')) AS closed
            FROM ev WHERE invoice_id IS NOT NULL GROUP BY ALL),
        open_failed AS (SELECT customer_id, bool_or(failed AND NOT closed) AS open FROM invoices GROUP BY 1),
        latest_sub AS (SELECT customer_id, arg_max({{'t': type, 'plan': plan_after, 'mrr': mrr_after}}, k) AS sub
                       FROM subs GROUP BY 1),
        c AS (
            SELECT customer_id,
              min(occurred_at) FILTER (type = 'customer.signed_up') AS signed_up_at,
              min(ms) FILTER (type = 'customer.signed_up') AS signup_ms,
              min(mi) FILTER (type = 'customer.signed_up') AS signup_mi,
              coalesce(sum(amount_cents) FILTER (type = 'payment.succeeded'), 0) AS revenue,
              count(*) FILTER (type = 'invoice.issued') AS issued,
              count(*) FILTER (type = 'invoice.paid') AS paid,
              count(*) FILTER (type = 'invoice.uncollectible') AS uncollectible,
              count(*) FILTER (type = 'payment.failed') AS failed,
              arg_max({{'reason': failure_reason, 'at': occurred_at, 'hard': decline_type = 'hard'}}, k)
                FILTER (type = 'payment.failed') AS last_failure,
              min(occurred_at) FILTER (type = 'feature.used' AND core_value) AS first_core_at,
              min(ms) FILTER (type = 'feature.used' AND core_value) AS first_core_ms,
              max(ms) FILTER (type = 'feature.used' AND core_value) AS last_core_ms,
              max(occurred_at) FILTER (type = 'feature.used') AS last_active_at,
              max(ms) FILTER (type = 'feature.used') AS last_active_ms,
              count(*) FILTER (type = 'feature.used' AND ms > {d30}) AS events30,
              count(*) FILTER (type = 'cancel.intent') AS intents,
              count(*) FILTER (type = 'cancel.intent' AND ms > {d30}) AS intents30,
              count(*) FILTER (type = 'payment.failed' AND ms > {d90}) AS failures90
            FROM ev GROUP BY customer_id)
        SELECT c.*, l.sub, coalesce(o.open, false),
          (SELECT coalesce(sum(n), 0) FROM monthly m WHERE m.customer_id = c.customer_id AND m.mi BETWEEN {pm - 3} AND {pm - 1}),
          (SELECT coalesce(sum(n), 0) FROM monthly m WHERE m.customer_id = c.customer_id
             AND m.mi BETWEEN c.signup_mi + 1 AND {pm - 4})
        FROM c LEFT JOIN latest_sub l USING (customer_id) LEFT JOIN open_failed o USING (customer_id) ORDER BY customer_id""")
    rows = []
    for (cid, signed_up_at, signup_ms, signup_mi, revenue, issued, paid, uncollectible, failed, last_failure, first_core_at,
         first_core_ms, last_core_ms, last_active_at, last_active_ms, events30, intents, intents30, failures90, sub, open_,
         prior3, lifetime_events) in customers:
        plan, status, mrr = "free", "free", 0
        if sub is not None:
            if sub["t"] == "subscription.canceled":
                status = "canceled"
            else:
                plan, mrr, status = sub["plan"], sub["mrr"], ("past_due" if open_ else "active")
        ttv = None
        if signup_ms is not None and first_core_ms is not None and 0 <= first_core_ms - signup_ms <= 14 * DAY:
            ttv = (first_core_ms - signup_ms) // 1000
        scored = status in ("active", "past_due")
        zombie = scored and not (last_core_ms is not None and last_core_ms > d30)
        points = []
        if scored:
            if status == "past_due":
                points.append((34, "past_due"))
                if last_failure is not None and last_failure["hard"]:
                    points.append((22, "hard_decline"))
            if intents30:
                points.append((28, "cancel_intent"))
            if failures90:
                points.append((2, "payment_failures"))
            if events30 == 0:
                points.append((18, "inactive"))
            elif events30 < 8:
                points.append((12, "light_use"))
            elif events30 < 16:
                points.append((8, "moderate_use"))
            tenure = as_of - signup_ms if signup_ms is not None else 0
            if (as_of - last_active_ms if last_active_ms is not None else tenure) >= 14 * DAY:
                points.append((5, "quiet_2_weeks"))
            if zombie:
                points.append((4, "zombie"))
            lifetime = 0.0
            if signup_mi is not None and signup_mi + 1 <= pm - 4:
                lifetime = lifetime_events / (pm - 4 - signup_mi)
            if lifetime < 4:
                points.append((4, "low_lifetime_use"))
            prior = prior3 / 3
            if prior >= 2 and events30 < 0.5 * prior:
                points.append((3, "engagement_drop"))
            if ttv is None:
                points.append((2, "not_activated"))
        score = min(sum(p for p, _ in points), 100)
        segment = "critical" if score >= 75 else "high" if score >= 50 else "medium" if score >= 25 else "low"
        rows.append([cid, signed_up_at, plan, status, mrr, revenue, issued, paid, uncollectible, failed,
                     last_failure["reason"] if last_failure else None, last_failure["at"] if last_failure else None,
                     first_core_at, ttv is not None, ttv, last_active_at, events30, intents, zombie, score, segment,
                     ";".join(code for _, code in points)])
    write(out, "mart_customer_360", ["customer_id", "signed_up_at", "plan", "status", "mrr_cents",
          "lifetime_revenue_cents", "invoices_issued", "invoices_paid", "invoices_uncollectible", "payments_failed",
          "last_failure_reason", "last_failure_at", "first_core_use_at", "activated", "ttv_seconds", "last_active_at",
          "feature_events_30d", "cancel_intents", "is_zombie", "risk_score", "risk_segment", "risk_reasons"], rows)

    # mart_failure_to_churn_signal: each month's billed customers, split by a failure in the month
    groups = {(r[0], r[1]): r[2:] for r in q("""
        WITH failed AS (SELECT DISTINCT mi, customer_id FROM ev WHERE type = 'payment.failed'),
        canceled AS (SELECT mi, customer_id, bool_or(cancellation = 'involuntary') AS involuntary
                     FROM ev WHERE type = 'subscription.canceled' GROUP BY ALL),
        cohort AS (
          SELECT b.mi, b.customer_id, f.customer_id IS NOT NULL AS had_failure,
            EXISTS (SELECT 1 FROM intent i WHERE i.customer_id = b.customer_id AND i.mi BETWEEN b.mi AND b.mi + 1) AS intent,
            EXISTS (SELECT 1 FROM canceled c WHERE c.customer_id = b.customer_id AND c.mi BETWEEN b.mi AND b.mi + 2) AS churned,
            EXISTS (SELECT 1 FROM canceled c WHERE c.customer_id = b.customer_id AND c.mi BETWEEN b.mi AND b.mi + 2
                    AND c.involuntary) AS involuntary,
            coalesce(before.n, 0) AS before, coalesce(after.n, 0) AS after
          FROM billed b LEFT JOIN failed f USING (mi, customer_id)
          LEFT JOIN monthly before ON before.customer_id = b.customer_id AND before.mi = b.mi - 1
          LEFT JOIN monthly after ON after.customer_id = b.customer_id AND after.mi = b.mi + 1)
        SELECT mi, had_failure, count(*), count(*) FILTER (intent), count(*) FILTER (churned),
               count(*) FILTER (involuntary), sum(before), sum(after)
        FROM cohort GROUP BY ALL""")}
    rows = []
    for mi in months:
        if not any((mi, flag) in groups for flag in (False, True)):
            continue
        for flag in (False, True):
            n, intent, churned, involuntary, before, after = groups.get((mi, flag), (0,) * 6)
            rows.append([label(mi), flag, n, intent, churned, involuntary, rate(intent, n), rate(churned, n),
                         rate(int(before), n), rate(int(after), n)])
    write(out, "mart_failure_to_churn_signal", ["month", "had_failure", "customers", "cancel_intent_customers",
          "churned_customers", "involuntary_churned_customers", "cancel_intent_rate", "churn_rate",
          "engagement_before", "engagement_after"], rows)

    # mart_activation_cohort: MRR at the end of a month is the latest subscription event's up to that month.
    cohort = q("""
        WITH signups AS (
            SELECT customer_id, min(ms) FILTER (type = 'customer.signed_up') AS signup_ms,
                   min(mi) FILTER (type = 'customer.signed_up') AS signup_mi,
                   min(ms) FILTER (type = 'feature.used' AND core_value) AS first_core_ms,
                   bool_or(type = 'subscription.started') AS converted
            FROM ev GROUP BY 1 HAVING signup_ms IS NOT NULL),
        mrr AS (
            SELECT customer_id, arg_max(mrr_after, k) FILTER (e.mi <= s.signup_mi + 1) AS m1,
                   arg_max(mrr_after, k) FILTER (e.mi <= s.signup_mi + 3) AS m3
            FROM signups s JOIN subs e USING (customer_id) GROUP BY 1)
        SELECT signup_mi, first_core_ms - signup_ms, converted, coalesce(m1, 0) > 0, coalesce(m3, 0) > 0
        FROM signups LEFT JOIN mrr USING (customer_id)""")
    by_month = {}
    for mi, ttv_ms, converted, m1, m3 in cohort:
        ttv = ttv_ms // 1000 if ttv_ms is not None and 0 <= ttv_ms <= 14 * DAY else None
        by_month.setdefault(mi, []).append((ttv, converted, converted and m1, converted and m3))
    rows = []
    for mi in sorted(by_month):
        c = by_month[mi]
        ttvs = sorted(t for t, _, _, _ in c if t is not None)
        converted = sum(1 for x in c if x[1])
        rows.append([label(mi), len(c), len(ttvs), rate(len(ttvs), len(c)), ttvs[(len(ttvs) - 1) // 2] if ttvs else None,
                     converted, rate(converted, len(c)),
                     None if mi + 1 > last_mi else sum(1 for x in c if x[2]),
                     None if mi + 3 > last_mi else sum(1 for x in c if x[3])])
    write(out, "mart_activation_cohort", ["signup_month", "signups", "activated", "activation_rate",
          "median_ttv_seconds", "converted", "paid_conversion_rate", "retained_m1", "retained_m3"], rows)

    # mart_recovery_opportunity: an invoice ends with its first invoice.paid / invoice.uncollectible in event time,
    # under the reason of its first failed attempt (the lowest attempt, then event time).
    rows = [[label(r[0])] + list(r[1:]) + [rate(r[2], r[2] + r[4])] for r in q("""
        WITH first_failure AS (
            SELECT invoice_id, arg_min(failure_reason, lpad(CAST(attempt AS VARCHAR), 20, '0') || k) AS reason
            FROM ev WHERE type = 'payment.failed' GROUP BY 1),
        ended AS (
            SELECT invoice_id, arg_min({'paid': type = 'invoice.paid', 'mi': mi, 'amount': amount_cents,
                                        'attempts': attempts}, k) AS e
            FROM ev WHERE type IN ('invoice.paid', 'invoice.uncollectible') GROUP BY 1)
        SELECT e.mi, reason, count(*) FILTER (e.paid), coalesce(sum(e.amount) FILTER (e.paid), 0),
               count(*) FILTER (NOT e.paid), coalesce(sum(e.amount) FILTER (NOT e.paid), 0)
        FROM ended JOIN first_failure USING (invoice_id)
        WHERE NOT e.paid OR e.attempts > 1 GROUP BY ALL ORDER BY e.mi, reason""")]
    write(out, "mart_recovery_opportunity", ["month", "failure_reason", "recovered_invoices", "recovered_cents",
          "lost_invoices", "lost_cents", "recovery_rate"], rows)

    seconds = time.perf_counter() - t0
    print(f"duckdb-marts {events} distinct events, 10 marts in {seconds:.2f} s = {events / seconds:.0f} events/s", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1], sys.argv[2])
