#!/usr/bin/env python3
"""Fits the risk model's points: a logistic regression of "churns within 60 days" on the model's binary
signals, from the CSV that `undercurrent evaluate-risk --signals-out FILE` writes. Prints each signal's
coefficient times ten (its points) and the ROC AUC of the rounded points on every further CSV given.

    undercurrent evaluate-risk --scenario baseline --customers 60000 --seed 1 --signals-out train.csv
    undercurrent evaluate-risk --scenario rescue-mission --customers 60000 --seed 3 --signals-out test.csv
    python3 Benchmarks/risk/fit_points.py train.csv test.csv

Needs numpy only (Newton's method with a small ridge penalty).
"""
import sys
import numpy as np

SIGNALS = ["past_due", "hard_decline", "cancel_intent", "payment_failures", "inactive", "light_use",
           "moderate_use", "quiet_2_weeks", "zombie", "low_lifetime_use", "engagement_drop", "not_activated"]


def load(path):
    rows = [line.rstrip("\n").split(",") for line in open(path)]
    header = rows[0][1:]
    data = np.array([[float(x) for x in r[1:]] for r in rows[1:]])
    c = {name: data[:, i] for i, name in enumerate(header)}
    e30 = c["events30"]
    x = np.column_stack([
        c["past_due"] > 0, (c["past_due"] > 0) & (c["past_due_hard"] > 0), c["intents30"] > 0, c["fail90"] > 0,
        e30 == 0, (e30 >= 1) & (e30 < 8), (e30 >= 8) & (e30 < 16), c["days_since_active"] >= 14, c["zombie"] > 0,
        c["lifetime"] < 4, (c["prior"] >= 2) & (e30 < 0.5 * c["prior"]), c["activated"] == 0,
    ]).astype(float)
    return x, c["churned"]


def fit(x, y, ridge=1.0):
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.column_stack([np.ones(len(x)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + ridge * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + ridge * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w[1:] / sd


def auc(score, y):
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y.sum()
    return (ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos))


x, y = load(sys.argv[1])
coef = fit(x, y)
points = np.maximum(0, np.round(coef * 10))
for name, c, p in zip(SIGNALS, coef, points):
    print(f"{name:18} coefficient {c:+.2f}  points {int(p)}")
for path in sys.argv[1:]:
    xt, yt = load(path)
    score = np.minimum(xt @ points, 100)
    top = np.argsort(-score, kind="stable")[: max(1, len(yt) // 20)]
    print(f"{path}: AUC {auc(score, yt):.3f}, top 5% precision {yt[top].mean():.1%} ({yt[top].mean() / yt.mean():.1f}x random)")
