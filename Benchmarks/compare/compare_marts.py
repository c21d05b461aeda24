#!/usr/bin/env python3
"""Checks that the Python consumer and the DuckDB batch computed the same numbers as Undercurrent's export
(so the throughput comparison is between equal work). Usage: compare_marts.py EXPORT_DIR A.json [B.json ...]"""
import csv
import json
import sys

export = sys.argv[1]
rev, rel = {}, {}
for r in csv.DictReader(open(f"{export}/mart_revenue_monthly.csv")):
    if int(r["successful_payments"]) > 0:
        rev[f"{r['month']}|{r['plan']}"] = [int(r[c]) for c in ("revenue_cents", "first_attempt_revenue_cents",
                                             "recovered_revenue_cents", "successful_payments", "paying_customers")]
cols = ("attempts", "succeeded", "failed", "first_attempts", "first_attempt_failures", "retries", "retry_successes",
        "invoices_attempted")
for name, plan in (("mart_payment_reliability_plan_monthly", None), ("mart_payment_reliability", "all")):
    for r in csv.DictReader(open(f"{export}/{name}.csv")):
        if int(r["attempts"]) > 0:
            rel[f"{r['month']}|{plan or r['plan']}"] = [int(r[c]) for c in cols]
ours = {"revenue": rev, "reliability": rel}
ok = True
for path in sys.argv[2:]:
    other = json.load(open(path))
    same = other == json.loads(json.dumps(ours))
    print(f"{path}: {'same numbers as the export' if same else 'DIFFERENT from the export'} ({len(rev)} revenue rows, {len(rel)} reliability rows)")
    ok = ok and same
sys.exit(0 if ok else 1)
