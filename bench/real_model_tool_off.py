"""The start point of bench/real_model.py with the calculator switched off (issue 9, item 4).

Measured first: after a forced `A` the warm-started SmolLM2 never answers directly (it writes the call's
expression, `A0+1;`), so "answers correctly without the tool" is measured here the other way: greedy
rollouts with max_tool_calls=0 (a call is refused with `RE;`, as the protocol says) and the final answer
graded. Writes results/real_model_tool_off.json (per question: correct, n_refused, answer).

Usage: OMP_NUM_THREADS=1 python bench/real_model_tool_off.py
"""
from __future__ import annotations
import glob, json, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "bench"))
from paretopo.files import write_json_atomic  # noqa: E402


def main():
    import torch
    torch.set_num_threads(1)
    import real_model as RM
    RM.quiet()
    from paretopo.tiny import load_tiny
    from paretopo.tools import default_cache_dir
    R = json.loads((ROOT / "results" / "real_model.json").read_text())
    s = R["meta"]["settings"]
    key = RM.hashlib.sha256(json.dumps({k: s[k] for k in ("warm_steps", "warm_batch", "warm_lr", "lora_r", "lora_top", "system")},
                                       sort_keys=True).encode()).hexdigest()[:12]
    start = default_cache_dir() / "real_model" / f"start-{key}"
    m, tok = load_tiny(start)
    _, evalq = RM.question_sets(tok, n_hard_eval=s["n_hard_eval"])
    t = time.perf_counter()
    rows = RM.eval_with_tool(m, tok, evalq, max_tool_calls=0)
    out = dict(command="OMP_NUM_THREADS=1 python bench/real_model_tool_off.py", start=str(start.name),
               seconds=round(time.perf_counter() - t, 1), rows=rows)
    write_json_atomic(ROOT / "results" / "real_model_tool_off.json", out)
    print(f"tool off: EM {sum(r['correct'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
