"""Measured CPU footprint of SmolLM2-135M-Instruct (issue 9, item 5): the inputs of the GPU estimates in nbs/41_real_model.

Each measurement runs in a fresh subprocess (peak RSS is per process): the resident memory after loading, and the
peak during one LoRA forward + backward at micro-batch B x L (with and without gradient checkpointing); plus the time
split of greedy decoding between the decoder blocks and the LM head (forward hooks). One torch thread.

Usage: OMP_NUM_THREADS=1 python bench/real_model_footprint.py [--out results/real_model_footprint.json]
"""
from __future__ import annotations
import argparse, json, subprocess, sys, textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from paretopo.files import write_json_atomic  # noqa: E402

CHILD = textwrap.dedent('''
    import json, resource, sys, time, warnings
    warnings.filterwarnings("ignore")
    import torch
    torch.set_num_threads(1)
    from transformers.utils import logging as hl; hl.set_verbosity_error(); hl.disable_progress_bar()
    from paretopo.models import load_model
    what, B, L = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: kB)
    r0 = rss()
    model, tok = load_model("smollm2", backend="hf", lora=what != "load", lora_r=16, gradient_checkpointing=what == "ckpt")
    out = dict(what=what, B=B, L=L, rss_import_mb=r0, rss_loaded_mb=rss(),
               params=sum(p.numel() for p in model.parameters()),
               trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
               param_mb=sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20)
    with torch.no_grad(): model(input_ids=torch.tensor([[1, 2]]))  # weights may be memory-mapped: touch them all first
    out["rss_touched_mb"] = rss()
    if what in ("train", "ckpt"):
        model.train()
        x = torch.randint(100, 40000, (B, L))
        t = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        out["rss_after_forward_mb"] = rss()
        loss.backward()
        out.update(rss_peak_mb=rss(), step_s=time.perf_counter() - t)
    if what == "decode":
        model.eval()
        times = {"blocks": 0.0, "lm_head": 0.0}
        def timer(name):
            def pre(m, a): m._t = time.perf_counter()
            def post(m, a, o): times[name] += time.perf_counter() - m._t
            return pre, post
        base = model.model if hasattr(model, "model") else model
        for name, mod in (("blocks", base.model.layers), ("lm_head", base.lm_head)):
            mods = list(mod) if name == "blocks" else [mod]
            for m in mods:
                pre, post = timer(name); m.register_forward_pre_hook(pre); m.register_forward_hook(post)
        x = torch.randint(100, 40000, (B, L))
        with torch.no_grad():
            t = time.perf_counter()
            model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=16, min_new_tokens=16, do_sample=False)
            total = time.perf_counter() - t
        out.update(decode_total_s=total, blocks_s=times["blocks"], lm_head_s=times["lm_head"], new_tokens=16)
    print(json.dumps(out))
''')


def main(argv=None):
    p = argparse.ArgumentParser(); p.add_argument("--out", default=str(ROOT / "results" / "real_model_footprint.json"))
    a = p.parse_args(argv)
    runs = [("load", 1, 1), ("train", 1, 128), ("ckpt", 1, 128), ("decode", 4, 32)]
    res = dict(command="OMP_NUM_THREADS=1 python bench/real_model_footprint.py", runs=[])
    for what, B, L in runs:
        r = subprocess.run([sys.executable, "-c", CHILD, what, str(B), str(L)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0: raise SystemExit(f"{what} failed:\n{r.stderr[-2000:]}")
        res["runs"].append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(res["runs"][-1], flush=True)
        write_json_atomic(a.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
