#!/usr/bin/env python3
"""Writes the demo page's question bank (gpo-wasm/www/data/) from a survey in gpo's tidy format,
its embedding cache, and the `gpo run` that trained the demo model.

usage: python3 gpo-wasm/make_bank.py --results RUN_DIR/results.json
           [--model gpo-wasm/www/data/model.gpo] [--gpo PATH_TO_GPO_CLI]
           [--survey fixtures/opinionqa] [--cache fixtures/opinionqa/minilm-gpo.gpoemb]
           [--out gpo-wasm/www/data]

Output:
* bank.json: the questions (text, options, ordinals, first embedding row), the model's method and
  prior (`{"kind": "knn_groups", "temperature": …}` or null), the prior groups with their answer
  distributions (6 decimals: the page computes the kNN-groups prior and the Train-group-mean and
  kNN-groups baselines from them, as gpo-train does), and the held-out groups with their true
  answer distributions (4 decimals);
* embeddings.f16: one embedding per (question, option), little-endian f16, row-major, in
  question order: the cache's vectors, byte for byte.

Groups: the prior groups are the model's `prior_groups` (read with `gpo inspect --json`; for a
model without a prior, the run's meta-training groups: train + validation), the held-out groups
the run's `test_groups` (results.json, one run: `splits` and `seeds` of one value each), so the
page only shows groups the model never trained on and never reads as prior.

Embeddings: each option's text is rebuilt exactly as gpo-train's `gpo` template
(gpo-train/src/embed/template.rs) builds it, and looked up in the cache by its sha256 (format:
gpo-train/src/embed/cache.rs). A text missing from the cache is an error naming the question: the
cache does not match the survey, or this replica of the template no longer matches template.rs.
Standard library only.
"""
import argparse
import csv
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

GPO_INSTRUCTION = "Answer the following question by picking ONE of the given options"


def alpaca_prompt(instruction, text):
    """template.rs alpaca_prompt, character for character."""
    return (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{instruction}\n\n### Input:\n{text}\n\n### Response:\n"
    )


def gpo_texts(question):
    """template.rs Template::Gpo.texts: one text per option, in option order."""
    options = question["options"]
    if len(options) > 26:
        raise SystemExit(f"question {question['key']!r} has {len(options)} options; the gpo template letters at most 26")
    letters = [chr(ord("A") + i) for i in range(len(options))]
    text = f"{question['text']}\n\nOptions:" + "".join(f"\n{l}. {o}" for l, o in zip(letters, options))
    prompt = alpaca_prompt(GPO_INSTRUCTION, text)
    return [f"{prompt}{l}. {o}" for l, o in zip(letters, options)]


class Cache:
    """A .gpoemb file (cache.rs, format version 1): sha256 of each text → its vector's bytes."""

    def __init__(self, path):
        data = Path(path).read_bytes()
        fail = lambda why: SystemExit(f"{path}: {why}")  # noqa: E731
        if len(data) < 60 or data[:8] != b"GPOEMBED":
            raise fail("not a gpo embedding cache (bad magic)")
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise fail("checksum mismatch (truncated or corrupt)")
        version, precision, dim, count = struct.unpack_from("<IB3xIQ", data, 8)
        if version != 1 or precision not in (1, 2):
            raise fail(f"unsupported format version {version} / precision {precision}")
        at = 28
        strings = []
        for _ in range(2):
            (n,) = struct.unpack_from("<I", data, at)
            strings.append(data[at + 4 : at + 4 + n].decode("utf-8"))
            at += 4 + n
        self.model_id, self.template_id = strings
        self.dim, self.width = dim, 2 if precision == 1 else 4
        keys_end = at + 32 * count
        row = dim * self.width
        if keys_end + count * row + 32 != len(data):
            raise fail("size does not match the header")
        self.rows = {data[at + 32 * i : at + 32 * (i + 1)]: keys_end + i * row for i in range(count)}
        self.data = data

    def f16(self, text):
        """The vector of `text` as little-endian f16 bytes, or None."""
        start = self.rows.get(hashlib.sha256(text.encode("utf-8")).digest())
        if start is None:
            return None
        raw = self.data[start : start + self.dim * self.width]
        return raw if self.width == 2 else struct.pack(f"<{self.dim}e", *struct.unpack(f"<{self.dim}f", raw))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True, help="results.json of the `gpo run` that trained the demo model")
    ap.add_argument("--survey", default="fixtures/opinionqa")
    ap.add_argument("--cache", default="fixtures/opinionqa/minilm-gpo.gpoemb")
    ap.add_argument("--out", default="gpo-wasm/www/data")
    ap.add_argument("--model", default="gpo-wasm/www/data/model.gpo", help="the demo model (.gpo)")
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--gpo", default=f"{target}/release/gpo", help="the gpo CLI (runs `gpo inspect --json`)")
    a = ap.parse_args()
    survey = Path(a.survey)

    results = json.loads(Path(a.results).read_text())
    if len(results["runs"]) != 1:
        raise SystemExit(f"{a.results}: {len(results['runs'])} runs; the demo model's config must have one split and one seed")
    run = results["runs"][0]

    meta = {"name": survey.name, "metric": "wasserstein"}
    if (survey / "survey.json").is_file():
        meta.update(json.loads((survey / "survey.json").read_text()))
    with open(survey / "questions.csv", newline="", encoding="utf-8") as f:
        questions = [
            {"key": r["key"], "text": r["text"], "options": json.loads(r["options"]), "ordinal": json.loads(r["ordinal"])}
            for r in csv.DictReader(f)
        ]
    index = {q["key"]: i for i, q in enumerate(questions)}
    groups = {}
    with open(survey / "answers.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            g = groups.setdefault(r["group"], {"name": r["group"], "attribute": r["attribute"], "answers": {}})
            if g["attribute"] != r["attribute"]:
                raise SystemExit(f"group name {r['group']!r} is used by two attributes; the bank keys groups by name")
            q = questions[index[r["question_key"]]]
            answers = g["answers"].setdefault(q["key"], [0.0] * len(q["options"]))
            answers[int(r["option_index"])] = float(r["probability"])
    exact = {}
    for g in groups.values():  # renormalise, as the loader does
        exact[g["name"]] = {key: [x / sum(p) for x in p] for key, p in g["answers"].items()}
    info = json.loads(subprocess.run([a.gpo, "inspect", "--json", a.model], check=True, capture_output=True, text=True).stdout)
    model_meta = info["metadata"]
    prior = json.loads(model_meta["prior"]) if info["config"].get("prior") else None
    if prior is not None and prior.get("kind") not in ("knn_groups", "train_mean"):
        raise SystemExit(f"{a.model}: prior {model_meta['prior']}; the page computes knn_groups and train_mean priors")
    meta_train = run["train_groups"] + run.get("validation_groups", [])
    prior_groups = model_meta["prior_groups"] if prior is not None else meta_train
    held_out = run["test_groups"]
    unknown = [n for n in prior_groups + held_out if n not in groups]
    if unknown:
        raise SystemExit(f"{a.results} / {a.model} name groups that {survey}/answers.csv lacks: {unknown}")
    if set(prior_groups) & set(held_out):
        raise SystemExit(f"prior groups {sorted(set(prior_groups) & set(held_out))} are also held out: wrong results.json?")
    if not set(prior_groups) <= set(meta_train):
        raise SystemExit(f"{a.model}'s prior groups are not the meta-training groups of {a.results}: wrong run?")
    temperature = (prior or {}).get("temperature", results.get("config", {}).get("evaluation", {}).get("knn_temperature", 0.02))

    cache = Cache(a.cache)
    if cache.template_id != "gpo":
        raise SystemExit(f"{a.cache}: template {cache.template_id!r}; make_bank.py rebuilds the 'gpo' template's texts")
    if results.get("embedding_dim", cache.dim) != cache.dim:
        raise SystemExit(f"{a.cache}: dim {cache.dim}, but the model was trained on {results['embedding_dim']}")
    vectors, missing, row = [], [], 0
    for q in questions:
        for o, text in enumerate(gpo_texts(q)):
            v = cache.f16(text)
            if v is None:
                missing.append(f"{q['key']} option {o} ({q['options'][o]!r})")
            else:
                vectors.append(v)
        q["row"] = row
        row += len(q["options"])
    if missing:
        print(f"error: {len(missing)} option texts are missing from {a.cache}:", file=sys.stderr)
        for m in missing[:20]:
            print(f"  {m}", file=sys.stderr)
        raise SystemExit("the cache does not match the survey, or the template replica differs from template.rs")

    bank = {
        "dataset": meta["name"],
        "metric": meta["metric"],
        "embedding_model": cache.model_id,
        "template": cache.template_id,
        "dim": cache.dim,
        "rows": row,
        "run": results["name"],
        "train_fraction": run["train_fraction"],
        "seed": run["seed"],
        "method": model_meta.get("method") or "gpo",
        "prior": prior,
        "knn_temperature": temperature,
        "questions": questions,
        "prior_groups": [rounded(groups[g], exact, 6) for g in prior_groups],
        "groups": [rounded(groups[g], exact, 4) for g in held_out],
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bank.json").write_text(json.dumps(bank, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    (out / "embeddings.f16").write_bytes(b"".join(vectors))
    for name in ("bank.json", "embeddings.f16"):
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")
    print(f"{len(questions)} questions, {row} options ({cache.model_id}), model {bank['method']} (prior {prior}), "
          f"{len(prior_groups)} prior groups, {len(held_out)} held-out groups (from {a.results})")


def rounded(group, exact, digits):
    """`group` with its renormalised answers rounded to `digits` decimals."""
    answers = {key: [round(x, digits) for x in p] for key, p in exact[group["name"]].items()}
    return {"name": group["name"], "attribute": group["attribute"], "answers": answers}


if __name__ == "__main__":
    main()
