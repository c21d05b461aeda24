#!/usr/bin/env python3
"""What a team would otherwise write: a Python consumer (confluent-kafka) keeping two of the marts
(mart_revenue_monthly and mart_payment_reliability_plan_monthly, the counting columns) up to date from the
same three topics, with exact event_id de-duplication. Prints the marts as JSON and its throughput on stderr.

Usage: python_consumer.py BOOTSTRAP EXPECTED_MESSAGES OUT.json
"""
import json
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition

bootstrap, expected, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"py-bench-{time.time()}", "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
c.subscribe(["billing", "payments", "engagement"])

seen = set()
revenue = defaultdict(lambda: [0, 0, 0, 0])      # (month, plan) -> revenue, first, recovered, successful
payers = defaultdict(set)                          # (month, plan) -> customers
rel = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])   # (month, plan) -> attempts, succeeded, failed, first, first_fail, retries, retry_ok
invoices = defaultdict(set)

taken = 0
start = None
last = time.perf_counter()
while taken < expected:
    batch = c.consume(num_messages=5000, timeout=1.0)
    if start is None and batch:
        start = time.perf_counter()
    if batch:
        last = time.perf_counter()
    elif start is not None and time.perf_counter() - last > 10:
        print(f"python-consumer: no messages for 10 s after {taken} of {expected}", file=sys.stderr)
        break
    for m in batch:
        if m.error():
            continue
        taken += 1
        e = json.loads(m.value())
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        t = e["type"]
        if t != "payment.succeeded" and t != "payment.failed":
            continue
        month = e["occurred_at"][:7]
        first = e["attempt"] == 1
        for plan in (e["plan"], "all"):
            k = (month, plan)
            r = rel[k]
            r[0] += 1
            if t == "payment.succeeded":
                r[1] += 1
                if not first:
                    r[6] += 1
                v = revenue[k]
                v[0] += e["amount_cents"]
                v[1 if first else 2] += e["amount_cents"]
                v[3] += 1
                payers[k].add(e["customer_id"])
            else:
                r[2] += 1
                if first:
                    r[4] += 1
            if first:
                r[3] += 1
            else:
                r[5] += 1
            invoices[k].add(e["invoice_id"])
seconds = last - (start or last)
c.close()
result = {
    "revenue": {f"{m}|{p}": v + [len(payers[(m, p)])] for (m, p), v in revenue.items()},
    "reliability": {f"{m}|{p}": r + [len(invoices[(m, p)])] for (m, p), r in rel.items()},
}
json.dump(result, open(out, "w"), sort_keys=True)
print(f"python-consumer {taken} messages in {seconds:.2f} s = {taken / seconds:.0f} msg/s", file=sys.stderr)
