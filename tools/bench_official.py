#!/usr/bin/env python3
"""The official GPO training step, driven update by update by `gpo bench train --official DIR`.

    python3 tools/bench_official.py OFFICIAL_CHECKOUT SETUP.json DATA.bin

OFFICIAL_CHECKOUT is a checkout of github.com/jamqd/Group-Preference-Optimization. Its own code
runs unchanged except for the device: its model (models/gpo.py, models/tnp.py, models/modules.py),
its OpinionQA collate (`collate_fn_gpo` from data/llm_data.py, read out of the file so that the
module's unrelated imports, Hugging Face `datasets` and pandas, are not needed), and the body of
its training loop (train_gpo.py: `optimizer.zero_grad()`, one pass over a DataLoader of every
training group, `model(batch)`, `loss.backward()`, `optimizer.step()`, `scheduler.step()`), with
Adam at lr 3e-4 and CosineAnnealingLR as train_gpo.py builds them. The hard-coded `device='cuda'`
becomes `'cpu'`, and `attrdict` (which no longer imports on Python ≥ 3.10) is a dict with
attribute access.

SETUP.json: {"threads", "seed", "steps", "dim_x", "options": [option count per question],
"groups", "sampling": {"min_context", "max_context", "min_target", "max_target"}, "model": {...}}.
DATA.bin: little-endian f32, the option embeddings (Σ options × dim_x) then each group's answer
probabilities (groups × Σ options).

Protocol: after setup it prints {"ready": true}. Each line "update" on stdin runs one timed update
(collate, forward, backward, Adam, scheduler) and prints {"ms", "context", "targets"}: the wall
time and the question indices the collate drew (recorded as it draws them) (shared by every group), so that gpo can run the
same update. "quit" ends it.
"""
import ast
import json
import pathlib
import sys
import time
import types


def load_official(root):
    """The official modules, imported from the checkout with the device set to the CPU."""
    import torch

    class AttrDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError as e:
                raise AttributeError(name) from e

        def __setattr__(self, name, value):
            self[name] = value

    shim = types.ModuleType("attrdict")
    shim.AttrDict = AttrDict
    sys.modules["attrdict"] = shim
    package = types.ModuleType("models")
    package.__path__ = []
    sys.modules["models"] = package
    for name in ["attention", "modules", "tnp", "gpo"]:
        source = (root / "models" / f"{name}.py").read_text()
        module = types.ModuleType(f"models.{name}")
        module.__file__ = str(root / "models" / f"{name}.py")
        sys.modules[f"models.{name}"] = module
        exec(compile(source.replace("device='cuda'", "device='cpu'"), module.__file__, "exec"), module.__dict__)
        setattr(package, name, module)
    # collate_fn_gpo alone, out of data/llm_data.py.
    path = root / "data" / "llm_data.py"
    tree = ast.parse(path.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "collate_fn_gpo")
    draws = []

    class Recording(types.ModuleType):
        """torch for the collate, recording its draws (the questions it picked)."""

        def __getattr__(self, name):
            return getattr(torch, name)

        def randint(self, *args, **kwargs):
            draws.append(torch.randint(*args, **kwargs))
            return draws[-1]

        def randperm(self, *args, **kwargs):
            draws.append(torch.randperm(*args, **kwargs))
            return draws[-1]

    namespace = {"torch": Recording("torch")}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(path), "exec"), namespace)
    return sys.modules["models.gpo"].GPO, namespace["collate_fn_gpo"], draws


def main():
    import torch
    from torch.utils.data import DataLoader

    root = pathlib.Path(sys.argv[1])
    setup = json.loads(pathlib.Path(sys.argv[2]).read_text())
    raw = pathlib.Path(sys.argv[3]).read_bytes()
    GPO, collate_fn_gpo, draws = load_official(root)
    torch.set_num_threads(setup["threads"])
    torch.manual_seed(setup["seed"])

    options, dim_x, n_groups = setup["options"], setup["dim_x"], setup["groups"]
    total = sum(options)
    values = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    expected = total * dim_x + n_groups * total
    assert values.numel() == expected, f"{sys.argv[3]}: {values.numel()} values, expected {expected}"
    embeddings = values[: total * dim_x].reshape(total, dim_x)
    answers = values[total * dim_x :].reshape(n_groups, total)
    starts = [0]
    for k in options:
        starts.append(starts[-1] + k)
    # The items of the official OqaGroupDataset_gpo: every group's questions, in one order.
    dataset = [
        {
            "questions": [
                {"q_emb": embeddings[s : s + k].clone(), "prob_ys": answers[g, s : s + k].clone().unsqueeze(-1)}
                for s, k in zip(starts, options)
            ]
        }
        for g in range(n_groups)
    ]
    s = setup["sampling"]
    ranges = (s["max_context"], s["min_context"], s["max_target"], s["min_target"])

    def collate(batch):  # train_gpo.py's CollateFunction for dataset 'oqa', on the CPU
        return collate_fn_gpo(batch, *ranges, device="cpu")

    loader = DataLoader(dataset, batch_size=32, collate_fn=collate, num_workers=0)
    m = setup["model"]
    model = GPO(dim_x, 1, m["d_model"], m["emb_depth"], m["dim_feedforward"], m["nhead"], m["dropout"], m["num_layers"])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=setup["steps"])
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)

    for line in sys.stdin:
        if line.strip() == "quit":
            break
        draws.clear()
        start = time.perf_counter()
        model.train()
        optimizer.zero_grad()
        for batch in loader:
            outs = model(batch)
            outs.loss.backward()
            optimizer.step()
            scheduler.step()
        ms = (time.perf_counter() - start) * 1e3
        # The collate's draws: the context and target counts, then the question order.
        n_ctx, n_tar, perm = draws[0].item(), draws[1].item(), draws[2].tolist()
        context, targets = perm[:n_ctx], perm[n_ctx : n_ctx + n_tar]
        assert batch["xc"].shape[1] == sum(options[q] for q in context), "recorded draws differ from the collate's"
        assert batch["xt"].shape[1] == sum(options[q] for q in targets), "recorded draws differ from the collate's"
        print(json.dumps({"ms": ms, "loss": outs.loss.item(), "context": context, "targets": targets}), flush=True)


if __name__ == "__main__":
    main()
