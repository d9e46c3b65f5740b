#!/usr/bin/env python3
"""Reference values for gpo_core::metrics, computed by scipy.

Writes fixtures/core/metric_cases.json: random cases (2-11 options, unsorted and tied ordinals,
zeros in p or q, unnormalised weights) with scipy's Wasserstein distance, the OpinionQA alignment
1 - WD / (max(o) - min(o)) (null when max = min), the Jensen-Shannon distance (natural log) and its
alignment (null where scipy gives NaN).

Run once with numpy and scipy installed:  python3 tools/make_metric_fixtures.py
The Rust tests only read the JSON.
"""
import json
import math
import pathlib

import numpy as np
import scipy
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

N_CASES = 300
OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "core" / "metric_cases.json"


def weights(rng, k):
    w = rng.random(k) * rng.choice([1.0, 3.0, 0.01])
    # Zeros, including several and (rarely) all but one.
    zeros = rng.random(k) < rng.choice([0.0, 0.2, 0.5])
    w[zeros] = 0.0
    if w.sum() == 0.0:
        w[rng.integers(k)] = rng.random() + 0.1
    if rng.random() < 0.5:
        w = w / w.sum()
    return w


def ordinal(rng, k):
    kind = rng.integers(4)
    if kind == 0:  # OpinionQA's usual 1..K
        o = np.arange(1, k + 1, dtype=float)
    elif kind == 1:  # unsorted reals
        o = rng.normal(size=k) * 3.0
    elif kind == 2:  # ties
        o = rng.integers(0, max(2, k // 2), size=k).astype(float)
    else:  # permuted integers with gaps (non-monotone in option order)
        o = rng.permutation(np.arange(k, dtype=float) * rng.choice([1.0, 2.5]) + rng.integers(-3, 3))
    if rng.random() < 0.03:  # all equal: unscorable
        o = np.full(k, 2.0)
    return o


def main():
    rng = np.random.default_rng(20231015)
    cases = []
    for _ in range(N_CASES):
        k = int(rng.integers(2, 12))
        o, p, q = ordinal(rng, k), weights(rng, k), weights(rng, k)
        wd = float(wasserstein_distance(o, o, p, q))
        span = float(o.max() - o.min())
        js = float(jensenshannon(p, q))
        cases.append({
            "ordinal": o.tolist(),
            "p": p.tolist(),
            "q": q.tolist(),
            "wasserstein_distance": wd,
            "wasserstein_alignment": (1.0 - wd / span) if span > 0 else None,
            "js_distance": None if math.isnan(js) else js,
            "js_alignment": None if math.isnan(js) else 1.0 - js,
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {"generator": "tools/make_metric_fixtures.py", "scipy": scipy.__version__, "numpy": np.__version__, "cases": cases}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
