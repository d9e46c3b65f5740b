#!/usr/bin/env python3
"""PyTorch reference for the GPO forward pass and loss (docs/original.md §3), for gpo-core's parity test.

Builds the original network exactly (build_mlp embedder, nn.TransformerEncoder of post-LN
nn.TransformerEncoderLayer with batch_first=True, the context-only additive mask, the
key-padding mask, the Linear-ReLU-Linear head, per-question softmax of the mean, sigma = exp),
gives every parameter random values (LayerNorm and attention biases included, so that no
transposition or naming slip hides behind a default), runs it in float64 on a few random inputs
and writes fixtures/core/parity.safetensors:

* weights under gpo-core's parameter names (Linear weights transposed to burn's [in, out]),
* inputs per case and episode: `case{c}.ep{e}.{context_x,context_y,target_x,target_y}`,
* outputs per case: `case{c}.mean`, `case{c}.log_std` ([batch, max_target_tokens], zero padded)
  and `case{c}.loss` (mean over real target options, as gpo-core; the original divides by the
  padded count, which only differs when targets are padded),
* the config and the question layout as JSON in the safetensors metadata.

Run once with torch, numpy and safetensors installed:  python3 tools/make_parity_fixture.py
"""
import json
import math
import pathlib

import numpy as np
import torch
from torch import nn
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "core" / "parity.safetensors"
# `prior=False`: the original model (the prior variant is ours, tested in gpo-core/tests/it/prior.rs).
CONFIG = dict(dim_x=8, d_model=32, emb_depth=4, d_ff=48, n_heads=4, n_layers=3, dropout=0.0, layer_norm_eps=1e-5,
              prior=False)


def build_mlp(dim_in, dim_hid, dim_out, depth):
    modules = [nn.Linear(dim_in, dim_hid), nn.ReLU(True)]
    for _ in range(depth - 2):
        modules += [nn.Linear(dim_hid, dim_hid), nn.ReLU(True)]
    modules.append(nn.Linear(dim_hid, dim_out))
    return nn.Sequential(*modules)


class OriginalGpo(nn.Module):
    """models/tnp.py TNP + models/gpo.py GPO, with dim_y = 1."""

    def __init__(self, c):
        super().__init__()
        self.embedder = build_mlp(c["dim_x"] + 1, c["d_model"], c["d_model"], c["emb_depth"])
        layer = nn.TransformerEncoderLayer(c["d_model"], c["n_heads"], c["d_ff"], c["dropout"],
                                           batch_first=True, layer_norm_eps=c["layer_norm_eps"])
        self.encoder = nn.TransformerEncoder(layer, c["n_layers"], enable_nested_tensor=False)
        self.predictor = nn.Sequential(nn.Linear(c["d_model"], c["d_ff"]), nn.ReLU(), nn.Linear(c["d_ff"], 2))

    def forward(self, xc, yc, xt, ctx_pad):
        num_ctx, num_tar = xc.shape[1], xt.shape[1]
        inp = torch.cat((torch.cat((xc, yc), -1), torch.cat((xt, torch.zeros_like(xt[..., :1])), -1)), 1)
        mask = torch.full((num_ctx + num_tar, num_ctx + num_tar), float("-inf"), dtype=inp.dtype)
        mask[:, :num_ctx] = 0.0
        key_pad = torch.cat((ctx_pad, torch.zeros(xt.shape[:2], dtype=torch.bool)), 1)
        key_pad = torch.zeros(key_pad.shape, dtype=inp.dtype).masked_fill(key_pad, float("-inf"))
        out = self.encoder(self.embedder(inp), mask=mask, src_key_padding_mask=key_pad)
        raw = self.predictor(out[:, -num_tar:])
        return raw[..., 0], raw[..., 1]


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 16
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(fan_in))


def burn_weights(model, c):
    """gpo-core names; burn's Linear weight is [in, out] (PyTorch's transposed)."""
    d = c["d_model"]
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out = {}

    def linear(dst, src):
        out[f"{dst}.weight"] = np.ascontiguousarray(sd[f"{src}.weight"].T)
        out[f"{dst}.bias"] = sd[f"{src}.bias"]

    for i in range(c["emb_depth"]):
        linear(f"embedder.{i}", f"embedder.{2 * i}")
    for l in range(c["n_layers"]):
        src = f"encoder.layers.{l}"
        w, b = sd[f"{src}.self_attn.in_proj_weight"], sd[f"{src}.self_attn.in_proj_bias"]
        for j, name in enumerate(["query", "key", "value"]):
            out[f"layers.{l}.attention.{name}.weight"] = np.ascontiguousarray(w[j * d:(j + 1) * d].T)
            out[f"layers.{l}.attention.{name}.bias"] = b[j * d:(j + 1) * d]
        linear(f"layers.{l}.attention.output", f"{src}.self_attn.out_proj")
        linear(f"layers.{l}.feed_forward.linear_inner", f"{src}.linear1")
        linear(f"layers.{l}.feed_forward.linear_outer", f"{src}.linear2")
        for n in (1, 2):
            out[f"layers.{l}.norm_{n}.gamma"] = sd[f"{src}.norm{n}.weight"]
            out[f"layers.{l}.norm_{n}.beta"] = sd[f"{src}.norm{n}.bias"]
    linear("head_hidden", "predictor.0")
    linear("head_out", "predictor.2")
    return out


def random_episode(rng, c, n_ctx_q, n_tar_q):
    def questions(n):
        opts = [int(rng.integers(2, 7)) for _ in range(n)]
        x = rng.normal(size=(sum(opts), c["dim_x"]))
        y = np.concatenate([rng.dirichlet(np.ones(k)) for k in opts]) if opts else np.zeros(0)
        return opts, x, y

    co, cx, cy = questions(n_ctx_q)
    to, tx, ty = questions(n_tar_q)
    return dict(context_options=co, target_options=to, context_x=cx, context_y=cy, target_x=tx, target_y=ty)


def run_case(model, episodes, c):
    b = len(episodes)
    nc = max(1, max(len(e["context_y"]) for e in episodes))
    nt = max(len(e["target_y"]) for e in episodes)
    xc, yc = torch.zeros(b, nc, c["dim_x"], dtype=torch.float64), torch.zeros(b, nc, 1, dtype=torch.float64)
    xt, yt = torch.zeros(b, nt, c["dim_x"], dtype=torch.float64), torch.zeros(b, nt, dtype=torch.float64)
    ctx_pad = torch.ones(b, nc, dtype=torch.bool)
    for i, e in enumerate(episodes):
        n, m = len(e["context_y"]), len(e["target_y"])
        xc[i, :n], yc[i, :n, 0], ctx_pad[i, :n] = torch.from_numpy(e["context_x"]), torch.from_numpy(e["context_y"]), False
        xt[i, :m], yt[i, :m] = torch.from_numpy(e["target_x"]), torch.from_numpy(e["target_y"])
    with torch.no_grad():
        mu_raw, log_std = model(xc, yc, xt, ctx_pad)
    mean = torch.zeros_like(mu_raw)
    ll_sum, n_real = 0.0, 0
    for i, e in enumerate(episodes):
        start = 0
        for k in e["target_options"]:  # per-question softmax, as the evaluation code
            mean[i, start:start + k] = torch.softmax(mu_raw[i, start:start + k], 0)
            start += k
        m = len(e["target_y"])
        dist = torch.distributions.Normal(mean[i, :m], torch.exp(log_std[i, :m]))
        ll_sum += dist.log_prob(yt[i, :m]).sum().item()
        n_real += m
        log_std[i, m:] = 0.0
    return mean.numpy(), log_std.numpy(), -ll_sum / n_real


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    rng = np.random.default_rng(42)
    c = CONFIG
    model = OriginalGpo(c).double()
    randomise(model, gen)
    model.train()  # dropout is 0: training mode only avoids PyTorch's fused inference path
    tensors = burn_weights(model, c)
    cases = [
        [random_episode(rng, c, 5, 7), random_episode(rng, c, 5, 7)],  # one group
        [random_episode(rng, c, 3, 4), random_episode(rng, c, 6, 2), random_episode(rng, c, 1, 5)],  # ragged
        [random_episode(rng, c, 12, 9)],
    ]
    layout = []
    for ci, episodes in enumerate(cases):
        mean, log_std, loss = run_case(model, episodes, c)
        tensors[f"case{ci}.mean"] = mean.astype(np.float32)
        tensors[f"case{ci}.log_std"] = log_std.astype(np.float32)
        tensors[f"case{ci}.loss"] = np.array([loss], dtype=np.float32)
        for ei, e in enumerate(episodes):
            for key in ("context_x", "context_y", "target_x", "target_y"):
                tensors[f"case{ci}.ep{ei}.{key}"] = np.asarray(e[key], dtype=np.float32)
        layout.append([dict(context_options=e["context_options"], target_options=e["target_options"]) for e in episodes])
    meta = {"config": json.dumps(c), "layout": json.dumps(layout), "generator": "tools/make_parity_fixture.py",
            "torch": torch.__version__}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT), metadata=meta)
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
