#!/usr/bin/env python3
"""The same GPO network in PyTorch, timed the way the original evaluates, on the exact shape
`gpo bench predict` measured (written by gpo to a JSON file).

    python3 tools/bench_pytorch.py shapes.json predict

Prints one JSON object: {"predict_ms": median ms}. torch threads = 2; prediction = eval mode under
no_grad, plus the per-question softmax done by the evaluation code. (Training is timed against the
official code itself: tools/bench_official.py, `gpo bench train --official`.)
"""
import json
import statistics
import sys
import time
import pathlib

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_parity_fixture import OriginalGpo  # noqa: E402


def batch(shape, dim_x, gen):
    """Random padded inputs for per-group (context tokens, target tokens)."""
    b = len(shape)
    nc = max(1, max(c for c, _ in shape))
    nt = max(t for _, t in shape)
    xc = torch.randn(b, nc, dim_x, generator=gen)
    yc = torch.rand(b, nc, 1, generator=gen)
    xt = torch.randn(b, nt, dim_x, generator=gen)
    yt = torch.rand(b, nt, generator=gen)
    pad = torch.zeros(b, nc, dtype=torch.bool)
    for i, (c, _) in enumerate(shape):
        pad[i, c:] = True
    return xc, yc, xt, yt, pad


def main():
    shapes = json.loads(pathlib.Path(sys.argv[1]).read_text())
    which = sys.argv[2]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    c = shapes["config"]
    model = OriginalGpo(c)
    assert which == "predict", "only `predict`: training is timed against the official code (tools/bench_official.py)"
    model.eval()
    c_tokens, t_tokens = shapes["predict"]
    xc, yc, xt, _, pad = batch([(c_tokens, t_tokens)], c["dim_x"], gen)
    times = []
    with torch.no_grad():
        for i in range(12):
            start = time.perf_counter()
            mu, _ = model(xc, yc, xt, pad)
            torch.softmax(mu, -1)
            if i >= 2:
                times.append(time.perf_counter() - start)
    print(json.dumps({"predict_ms": statistics.median(times) * 1e3}))


if __name__ == "__main__":
    main()
