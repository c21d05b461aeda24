#!/usr/bin/env python3
"""The seed documents' batch pipeline, on DuckDB: load the archive and recompute the same two marts
(mart_revenue_monthly and mart_payment_reliability_plan_monthly, the counting columns) from scratch with SQL,
de-duplicating by event_id. Prints the marts as JSON and the time taken on stderr.

Usage: duckdb_batch.py ARCHIVE.ndjson OUT.json
"""
import json
import sys
import time

import duckdb

archive, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"""
CREATE TABLE raw AS SELECT value FROM read_json('{archive}', format='newline_delimited',
    columns={{'topic':'VARCHAR','key':'VARCHAR','timestamp':'VARCHAR','value':'VARCHAR'}})""")
con.execute("""
CREATE TABLE payments AS
SELECT DISTINCT ON (event_id) * FROM (
  SELECT json_extract_string(value, '$.event_id') AS event_id,
         json_extract_string(value, '$.type') AS type,
         substr(json_extract_string(value, '$.occurred_at'), 1, 7) AS month,
         json_extract_string(value, '$.customer_id') AS customer_id,
         json_extract_string(value, '$.invoice_id') AS invoice_id,
         json_extract_string(value, '$.plan') AS plan,
         CAST(json_extract(value, '$.amount_cents') AS BIGINT) AS amount,
         CAST(json_extract(value, '$.attempt') AS INTEGER) AS attempt
  FROM raw) WHERE type IN ('payment.succeeded', 'payment.failed')""")
con.execute("""
CREATE TABLE p2 AS SELECT *, plan AS p FROM payments UNION ALL SELECT *, 'all' AS p FROM payments""")
rev = con.execute("""
SELECT month, p,
  SUM(amount) FILTER (WHERE type = 'payment.succeeded'),
  COALESCE(SUM(amount) FILTER (WHERE type = 'payment.succeeded' AND attempt = 1), 0),
  COALESCE(SUM(amount) FILTER (WHERE type = 'payment.succeeded' AND attempt > 1), 0),
  COUNT(*) FILTER (WHERE type = 'payment.succeeded'),
  COUNT(DISTINCT customer_id) FILTER (WHERE type = 'payment.succeeded')
FROM p2 GROUP BY month, p HAVING COUNT(*) FILTER (WHERE type = 'payment.succeeded') > 0""").fetchall()
rel = con.execute("""
SELECT month, p, COUNT(*),
  COUNT(*) FILTER (WHERE type = 'payment.succeeded'),
  COUNT(*) FILTER (WHERE type = 'payment.failed'),
  COUNT(*) FILTER (WHERE attempt = 1),
  COUNT(*) FILTER (WHERE attempt = 1 AND type = 'payment.failed'),
  COUNT(*) FILTER (WHERE attempt > 1),
  COUNT(*) FILTER (WHERE attempt > 1 AND type = 'payment.succeeded'),
  COUNT(DISTINCT invoice_id)
FROM p2 GROUP BY month, p""").fetchall()
seconds = time.perf_counter() - t0
events = con.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
result = {
    "revenue": {f"{r[0]}|{r[1]}": [int(x) for x in r[2:6]] + [int(r[6])] for r in rev},
    "reliability": {f"{r[0]}|{r[1]}": [int(x) for x in r[2:]] for r in rel},
}
json.dump(result, open(out, "w"), sort_keys=True)
print(f"duckdb-batch {events} events in {seconds:.2f} s = {events / seconds:.0f} events/s", file=sys.stderr)
