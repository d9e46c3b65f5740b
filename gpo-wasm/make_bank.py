#!/usr/bin/env python3
"""Writes the demo page's question bank (gpo-wasm/www/data/) from a survey in gpo's tidy format.

usage: python3 gpo-wasm/make_bank.py [--survey fixtures/opinionqa] [--out gpo-wasm/www/data]
                                     [--dim 384] [--train-fraction 0.6] [--seed 0]

Output:
* bank.json: the questions (text, options, ordinals, first embedding row, and the training
  groups' mean distribution: the Train-group-mean baseline), the training groups' names, and the
  held-out groups with their true answer distributions (4 decimals);
* embeddings.f16: one embedding per (question, option), little-endian f16, row-major, in
  question order.

The group split repeats gpo-train's (train::split::Split::new): groups 0..n in the order of their
first row in answers.csv, shuffled by gpo_core::rng::SplitMix64(seed); the first
floor(n * fraction) are meta-training groups, the rest held out.

Embeddings: for now every (question, option) gets a deterministic pseudo-random unit vector
(embedding_model "synthetic:DIM"), enough to test the page and the bindings end to end. Real
MiniLM vectors come from gpo-train's embedding cache once it is bundled (see README.md).
Standard library only.
"""
import argparse
import csv
import json
import math
import struct
from pathlib import Path

MASK = (1 << 64) - 1


class SplitMix64:
    """gpo_core::rng::SplitMix64, bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def next_f64(self):
        return (self.next_u64() >> 11) / float(1 << 53)

    def below(self, n):
        zone = MASK - (MASK % n)
        while True:
            v = self.next_u64()
            if v < zone:
                return v % n

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def synthetic_embedding(text, dim):
    seed = 0xCBF29CE484222325
    for b in text.encode("utf-8"):  # FNV-1a
        seed = ((seed ^ b) * 0x100000001B3) & MASK
    rng = SplitMix64(seed)
    v = [rng.next_f64() * 2.0 - 1.0 for _ in range(dim)]
    norm = max(math.sqrt(sum(x * x for x in v)), 1e-12)
    return [x / norm for x in v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--survey", default="fixtures/opinionqa")
    ap.add_argument("--out", default="gpo-wasm/www/data")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--train-fraction", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    survey = Path(a.survey)

    meta = {"name": survey.name, "metric": "wasserstein"}
    if (survey / "survey.json").is_file():
        meta.update(json.loads((survey / "survey.json").read_text()))
    with open(survey / "questions.csv", newline="", encoding="utf-8") as f:
        questions = [
            {"key": r["key"], "text": r["text"], "options": json.loads(r["options"]), "ordinal": json.loads(r["ordinal"])}
            for r in csv.DictReader(f)
        ]
    index = {q["key"]: i for i, q in enumerate(questions)}
    groups, group_index = [], {}
    with open(survey / "answers.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            gid = (r["group"], r["attribute"])
            if gid not in group_index:
                group_index[gid] = len(groups)
                groups.append({"name": r["group"], "attribute": r["attribute"], "answers": {}})
            q = questions[index[r["question_key"]]]
            answers = groups[group_index[gid]]["answers"].setdefault(q["key"], [0.0] * len(q["options"]))
            answers[int(r["option_index"])] = float(r["probability"])
    for g in groups:  # renormalise, as the loader does
        for key, p in g["answers"].items():
            total = sum(p)
            g["answers"][key] = [round(x / total, 4) for x in p]

    n_train = math.floor(len(groups) * a.train_fraction)
    if not 0 < n_train < len(groups):
        raise SystemExit(f"--train-fraction {a.train_fraction} leaves no train or no held-out group")
    order = list(range(len(groups)))
    SplitMix64(a.seed).shuffle(order)
    train, held_out = sorted(order[:n_train]), sorted(order[n_train:])

    values, row = [], 0
    for q in questions:
        for option in q["options"]:
            values.extend(synthetic_embedding(f"{q['text']}\n{option}", a.dim))
        answered = [groups[g]["answers"][q["key"]] for g in train if q["key"] in groups[g]["answers"]]
        q["row"] = row
        q["train_mean"] = (
            [round(sum(p[o] for p in answered) / len(answered), 4) for o in range(len(q["options"]))] if answered else None
        )
        row += len(q["options"])

    bank = {
        "dataset": meta["name"],
        "metric": meta["metric"],
        "embedding_model": f"synthetic:{a.dim}",
        "dim": a.dim,
        "rows": row,
        "train_fraction": a.train_fraction,
        "seed": a.seed,
        "train_groups": [groups[g]["name"] for g in train],
        "questions": questions,
        "groups": [groups[g] for g in held_out],
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bank.json").write_text(json.dumps(bank, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    (out / "embeddings.f16").write_bytes(struct.pack(f"<{len(values)}e", *values))
    for name in ("bank.json", "embeddings.f16"):
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")
    print(f"{len(questions)} questions, {row} options, {len(train)} train groups, {len(held_out)} held-out groups")


if __name__ == "__main__":
    main()
