#!/usr/bin/env python3
"""Texts per second of sentence-transformers (all-MiniLM-L6-v2, CPU) on the texts `gpo bench embed`
embeds, at the same batch sizes, and torch's own f32 matmul throughput on this machine (the
reference for what any encoder could reach here).

    python3 tools/bench_sentence_transformers.py MODEL_DIR_OR_WHL TEXTS.jsonl BATCHES THREADS

TEXTS.jsonl holds one JSON string per line (`gpo bench embed` writes it); BATCHES is a
comma-separated list (e.g. 1,32). Prints one JSON object on stdout:
{"torch": ..., "threads": ..., "matmul_gflops": ..., "rows": [{"batch": 1, "texts_per_second": ...}]}.
Each batch size is timed 3 times after a warm-up; the best time counts.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_embedding_reference import model_dir  # noqa: E402


def matmul_gflops(torch, n: int = 1024, reps: int = 10) -> float:
    """Median f32 GEMM throughput of torch at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model_path, texts_path, batches, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(threads)
    with open(texts_path, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(model_dir(model_path, tmp), device="cpu")
        model.encode(texts[:8], batch_size=8)  # warm-up
        for batch in (int(b) for b in batches.split(",")):
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                model.encode(texts, batch_size=batch)
                best = min(best, time.perf_counter() - t)
            rows.append({"batch": batch, "texts_per_second": len(texts) / best})
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "matmul_gflops": matmul_gflops(torch),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
