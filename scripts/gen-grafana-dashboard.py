#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/undercurrent.json, the provisioned Grafana dashboard.

Every query names only metrics the processes export (a test checks it against a real Prometheus that
scrapes them). Run after changing a panel: python3 scripts/gen-grafana-dashboard.py
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(expr, legend)], description)
ROWS = [
    ("Throughput", [
        ("Input messages by outcome", "ops", [
            ("sum by (outcome) (rate(undercurrent_input_messages_total[$__rate_interval]))", "{{outcome}}")],
         "Messages the consumer took in per second: accepted, duplicate, rejected (dead-lettered), skipped."),
        ("Producer deliveries", "ops", [
            ("sum by (instance) (rate(undercurrent_producer_messages_delivered_total[$__rate_interval]))", "{{instance}} delivered"),
            ("sum by (instance) (rate(undercurrent_producer_messages_failed_total[$__rate_interval]))", "{{instance}} failed")],
         "Messages each producer's brokers acknowledged (and failed) per second."),
    ]),
    ("Lag", [
        ("Consumer lag per partition (messages)", "short", [
            ("undercurrent_consumer_lag_messages", "{{topic}}/{{partition}}")],
         "Messages between each input partition's end and the consumer's position."),
        ("Consumer lag per partition (seconds)", "s", [
            ("undercurrent_consumer_lag_seconds", "{{topic}}/{{partition}}")],
         "How long ago the next message of each partition was written, estimated from its end offsets over time."),
    ]),
    ("Latency", [
        ("End-to-end latency (estimate)", "s", [
            ("histogram_quantile(0.99, sum by (le) (rate(undercurrent_producer_delivery_latency_seconds_bucket[$__rate_interval])))"
             " + scalar(max(undercurrent_consumer_lag_seconds))", "p99 delivery + worst consumer lag")],
         "From a producer's send to the event being in the marts: delivery latency (p99) plus the worst partition's lag."),
        ("Delivery latency", "s", [
            ("histogram_quantile(0.5, sum by (le) (rate(undercurrent_producer_delivery_latency_seconds_bucket[$__rate_interval])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(undercurrent_producer_delivery_latency_seconds_bucket[$__rate_interval])))", "p99")],
         "Time from a producer's send to the broker's acknowledgement."),
        ("Producer queue", "short", [
            ("undercurrent_producer_queue_messages", "{{instance}}")],
         "Messages sent but not yet acknowledged, per producer."),
    ]),
    ("Checkpoints", [
        ("Checkpoint duration", "s", [
            ("histogram_quantile(0.5, sum by (le) (rate(undercurrent_checkpoint_duration_seconds_bucket[$__rate_interval])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(undercurrent_checkpoint_duration_seconds_bucket[$__rate_interval])))", "p99")],
         "Time to write one partition's checkpoint."),
        ("Checkpoints and failures", "ops", [
            ("sum(rate(undercurrent_checkpoints_total[$__rate_interval]))", "written"),
            ("sum(rate(undercurrent_checkpoint_failures_total[$__rate_interval]))", "failed")],
         "Partition checkpoints written and failed per second."),
        ("Kafka cluster and outputs", "short", [
            ("undercurrent_kafka_cluster_up", "{{instance}} cluster up"),
            ("undercurrent_outputs_in_flight", "{{instance}} outputs in flight")],
         "Whether a broker answers the consumer (1) or none does (0), and its risk, alert and dead-letter messages sent and not yet delivered: a checkpoint waits for them."),
    ]),
    ("Data quality and alerts", [
        ("Dead letters", "ops", [
            ("sum(rate(undercurrent_dlq_messages_total[$__rate_interval]))", "to the dead-letter topic")],
         "Input messages the contract rejected, per second."),
        ("Failure-spike alerts", "short", [
            ("sum by (state) (increase(undercurrent_alerts_total[$__range]))", "{{state}}")],
         "Alerts raised and resolved in the dashboard's time range."),
        ("Failure spikes firing", "short", [
            ("undercurrent_failure_spike_firing == 1", "{{scope}}")],
         "The scopes where a failure-spike alert fires now (Prometheus' UndercurrentFailureSpike pages on the same series); the alerts page of the dashboard explains each."),
        ("What the marts and alerts have not seen", "short", [
            ("sum by (topic) (undercurrent_history_missed_messages)", "{{topic}}: first messages never applied"),
            ("undercurrent_alert_late_attempts", "{{instance}}: payment attempts too late for alerting"),
            ("count by (instance) (undercurrent_alert_scope_attempts_per_hour > 0 unless on (instance, scope) undercurrent_alert_detection_seconds)",
             "{{instance}}: scopes with payments but no baseline yet")],
         "Messages before the first one applied, per input topic (retention deleted them before the consumer read them: the marts' history is partial); payment attempts that came after their minute was evaluated (in the marts, left out of alerting); and the scopes that see payments but whose baseline is still being learnt, where no failure spike can be alerted on yet."),
        ("Failure-spike reach", "s", [
            ("undercurrent_alert_detection_seconds{scope=~\"overall|plan:[a-z]+\"}", "{{scope}}")],
         "Expected time from the start of an outage failing half of a scope's first attempts to its alert, at the present volume; a scope appears once its baseline is learnt."),
    ]),
    ("PostgreSQL sink", [
        ("Sink lag", "s", [
            ("undercurrent_sink_lag_seconds", "{{sink}} behind (s)")],
         "Age of the oldest checkpoint the sink has not written; 0 when caught up."),
        ("Sink health", "short", [
            ("undercurrent_sink_up", "{{sink}} up"),
            ("undercurrent_sink_lag_checkpoints", "{{sink}} checkpoints behind"),
            ("sum by (sink) (rate(undercurrent_sink_commits_total[$__rate_interval]))", "{{sink}} commits/s")],
         "Whether the sink is connected, how many checkpoints it trails, and its commits."),
    ]),
    ("Dashboard", [
        ("HTTP requests", "reqps", [
            ("sum by (route, status) (rate(undercurrent_http_requests_total[$__rate_interval]))", "{{route}} {{status}}")],
         "Requests to the consumer's dashboard and API, by route and status."),
    ]),
]


def build():
    panels, y, pid = [], 0, 1
    for row_title, row in ROWS:
        panels.append({"type": "row", "title": row_title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        width = 24 // len(row)
        for i, (title, unit, queries, description) in enumerate(row):
            panels.append({
                "type": "timeseries", "title": title, "id": pid, "description": description,
                "datasource": DS,
                "gridPos": {"h": 8, "w": width, "x": i * width, "y": y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": [{"refId": chr(ord("A") + j), "datasource": DS, "expr": expr, "legendFormat": legend}
                            for j, (expr, legend) in enumerate(queries)],
            })
            pid += 1
        y += 8
    return {
        "title": "Undercurrent", "uid": "undercurrent", "description": "Throughput, lag, latency, checkpoints, dead letters, alerts and the PostgreSQL sink of Undercurrent's producers and consumer.",
        "tags": ["undercurrent", "kafka"], "timezone": "utc", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                                 "current": {"text": "Prometheus", "value": "prometheus"}}]},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent.parent / "deploy/grafana/dashboards/undercurrent.json"
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
