#!/usr/bin/env python3
"""Texts per second of sentence-transformers (all-MiniLM-L6-v2, CPU, 2 torch threads) on the same
GPO prompts as `cargo bench -p gpo-train --bench embed`: the first 200 (question, option) prompts
of the OpinionQA disagreement-500 questions in ../shared/data/opinionqa/derived/questions.csv.

    python3 tools/bench_sentence_transformers.py [MODEL_DIR_OR_WHL] [N]
"""
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_embedding_reference import gpo_prompt, model_dir  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent.parent.parent / "shared/data/opinionqa/derived/questions.csv"


def prompts(n: int) -> list[str]:
    out = []
    with open(QUESTIONS, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["in_disagreement_500"] != "1":
                continue
            options = json.loads(row["options_json"])
            out.extend(gpo_prompt(row["question"], options, i) for i in range(len(options)))
            if len(out) >= n:
                return out[:n]
    return out


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    texts = prompts(n)
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(model_dir(sys.argv[1] if len(sys.argv) > 1 else None, tmp), device="cpu")
        model.encode(texts[:8], batch_size=8)  # warm-up
        print(f"sentence-transformers, torch {torch.__version__}, threads {torch.get_num_threads()}, {len(texts)} texts")
        print(f"{'batch':>10} {'texts':>8} {'seconds':>10} {'texts/s':>12}")
        for batch in (1, 32):
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                model.encode(texts, batch_size=batch)
                best = min(best, time.perf_counter() - t)
            print(f"{batch:>10} {len(texts):>8} {best:>10.3f} {len(texts) / best:>12.1f}")


if __name__ == "__main__":
    main()
