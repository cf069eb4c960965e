"""Miniature reproduction of the paper's claim (issue 5): train the tool-over-using tiny policy with every estimator.

Start point: the cached supervised warm start (`paretopo.warmstart.warm_started_model(steps=1000, seed=0)`), which
calls the calculator on almost every question. From it, each estimator (and each ablation) trains with the project's
TRL trainer (`paretopo.trainer.ParetoPOTrainer`, the one users get) for the same steps, batch, learning rate and seeds,
on a training mix of known easy facts, unknown easy facts (never answered directly in the warm start) and hard questions.
Evaluation (greedy and temperature 1) on: every known fact, every unknown fact, and hard questions from the held-out
hard space. Per question outcomes are stored so the report can bootstrap intervals over seeds and questions.

Results go to results/repro.json, rewritten atomically after every finished run (`meta.partial` stays true until
all runs are done), so a cut-off run still leaves data.

Usage: python bench/repro.py [--steps 80] [--seeds 3] [--jobs 2] [--out results/repro.json] [--append] [--smoke]
The committed file was made by `python bench/repro.py` (3 seeds), then `--seeds 4 --append`, then `--seeds 6 --append`.
Issue 10's runs (results/repro_issue10.json) come from a warm start retrained on this machine, which is not bitwise the one of
results/repro.json; `--append` now refuses to mix warm starts (it compares the cached warm start's final training loss).
"""
from __future__ import annotations
import argparse, json, math, multiprocessing as mp, os, random, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from paretopo.files import write_json_atomic  # noqa: E402  (after the path insert: runs from a clone)

# (name, estimator, extra ParetoPOConfig fields); every run uses the same budget and settings otherwise
VARIANTS = [
    ("grpo", "grpo", {}),
    ("fixed_weight", "fixed_weight", {}),
    ("otc_grpo", "otc_grpo", {}),
    ("mo_grpo", "mo_grpo", {}),
    ("hdpo", "hdpo", {}),
    ("paretopo", "paretopo", {}),
    ("paretopo_stage1", "paretopo_stage1", {}),
    ("paretopo_stage2", "paretopo_stage2", {}),
    ("paretopo rank_center=none", "paretopo", {"rank_center": "none"}),
    ("paretopo dhv=step", "paretopo", {"dhv_granularity": "step"}),
    ("paretopo gate=correct", "paretopo", {"tool_reward_gate": "correct"}),
    # issue 10: beyond the paper (options of ParetoPOConfig; the paper's behaviour stays the default)
    ("paretopo n_opt=evidence", "paretopo", {"n_opt_rule": "evidence"}),
    ("paretopo dominance=correct_first", "paretopo", {"rank_dominance": "correct_first"}),
    ("paretopo evidence+correct_first", "paretopo", {"n_opt_rule": "evidence", "rank_dominance": "correct_first"}),
    ("paretopo optimistic+correct_first", "paretopo", {"n_opt_rule": "optimistic", "rank_dominance": "correct_first"}),
    ("paretopo n_opt=optimistic", "paretopo", {"n_opt_rule": "optimistic"}),
]
DIAG_KEYS = ("front1_wrong", "mixed", "n_opt_zero", "adv_correct_call", "adv_correct_direct", "adv_wrong_direct")
SPLITS = ("known", "unknown", "hard")


def quiet():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1"); os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hl
    hl.set_verbosity_error(); hl.disable_progress_bar()


def training_examples(n:int, *, seed:int, mix=(1/3, 1/3, 1/3)) -> list:
    "`n` training questions: known facts, unknown facts and hard (training-space) questions in proportions `mix`."
    from paretopo.tasks import synthetic_arithmetic
    kn = synthetic_arithmetic(kind="known"); unk = synthetic_arithmetic(kind="unknown")
    hard = synthetic_arithmetic(n, kind="hard", seed=seed)
    rng = random.Random(f"repro-train-{seed}")
    out = []
    for i in range(n):
        u = rng.random()
        out.append(rng.choice(kn) if u < mix[0] else rng.choice(unk) if u < mix[0] + mix[1] else hard[i])
    return out


def eval_sets(cfg) -> dict:
    "Held-out evaluation questions: every known fact, every unknown fact, `eval_hard` questions of the hard eval space."
    from paretopo.tasks import synthetic_arithmetic
    return {"known": synthetic_arithmetic(kind="known"), "unknown": synthetic_arithmetic(kind="unknown"),
            "hard": synthetic_arithmetic(cfg["eval_hard"], kind="hard_eval", seed=cfg["eval_seed"])}


def evaluate_questions(model, tok, sets:dict, cfg:dict, *, seed:int) -> dict:
    "Per split and decoding mode, per question: correct count, calls, model tokens over `samples` trajectories."
    import numpy as np
    from paretopo.rollout import generate_rollouts
    from paretopo.tasks import grade_synthetic
    from paretopo.tools import CalculatorTool
    tool = CalculatorTool()
    model.eval()
    out = {}
    for mode, greedy, s in (("greedy", True, 1), ("T=1", False, cfg["eval_samples"])):
        for split, exs in sets.items():
            rows = [e for e in exs for _ in range(s)]
            rs = []
            for i in range(0, len(rows), 256):
                rs += generate_rollouts(model, tok, [e.prompt for e in rows[i:i + 256]], tool, max_new_tokens=cfg["max_new_tokens"],
                                        max_tool_calls=cfg["max_tool_calls"], greedy=greedy, temperature=1.0, seed=seed + i)
            c = np.array([grade_synthetic(r.answer, e.answer) for r, e in zip(rs, rows)]).reshape(len(exs), s)
            n = np.array([r.n_calls for r in rs]).reshape(len(exs), s)
            t = np.array([r.n_tokens for r in rs]).reshape(len(exs), s)
            out[f"{split} {mode}"] = dict(samples=s, correct=c.sum(1).astype(int).tolist(), calls=n.sum(1).astype(int).tolist(),
                                          tokens=t.sum(1).astype(int).tolist(), truncated=int(sum(r.truncated for r in rs)),
                                          direct_wrong=int(sum((r.n_calls == 0) and not ok for r, ok in zip(rs, c.reshape(-1)))))
    return out


def _init_worker(threads):
    import torch
    torch.set_num_threads(threads)
    quiet()


def run_warmstart(cfg) -> dict:
    from paretopo.warmstart import warm_started_model
    t0 = time.perf_counter()
    model, tok, ws = warm_started_model(steps=cfg["warmstart_steps"], seed=cfg["warmstart_seed"])
    ev = evaluate_questions(model, tok, eval_sets(cfg), cfg, seed=cfg["eval_seed"] + 10_000)
    return dict(kind="warmstart", eval=ev, seconds=time.perf_counter() - t0,
                stats=dict(steps=ws["steps"], loss_last=ws.get("loss_last"), traces=ws.get("traces"), cached=bool(ws.get("cached"))))


def run_one(job) -> dict:
    "Train one (variant, seed) from the warm start with ParetoPOTrainer and evaluate it."
    name, estimator, extra, seed, cfg = job
    if name == "__warmstart__": return run_warmstart(cfg)
    import numpy as np, torch
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback
    from paretopo.config import ParetoPOConfig
    from paretopo.demo import make_example_reward
    from paretopo.rollout import make_rollout_func
    from paretopo.tasks import synthetic_arithmetic
    from paretopo.tools import CalculatorTool
    from paretopo.trainer import ParetoPOTrainer, examples_to_dataset, tool_calls_reward
    from paretopo.warmstart import warm_started_model
    t0 = time.perf_counter()
    model, tok, _ = warm_started_model(steps=cfg["warmstart_steps"], seed=cfg["warmstart_seed"])
    steps, P, g = cfg["steps"], cfg["prompts"], cfg["group"]
    train = training_examples(steps * P, seed=seed)
    split_of = {str(e.id): e.meta["split"] for e in train}
    split_of = {q: ("hard" if s == "hard" else s) for q, s in split_of.items()}
    tool = CalculatorTool()
    rf = make_rollout_func(tool, max_tool_calls=cfg["max_tool_calls"], max_new_tokens=cfg["max_new_tokens"])
    with tempfile.TemporaryDirectory() as d:
        args = ParetoPOConfig(output_dir=d, use_cpu=True, report_to=[], max_steps=steps, advantage=estimator,
                              per_device_train_batch_size=P * g, num_generations=g, max_completion_length=cfg["max_new_tokens"],
                              temperature=1.0, learning_rate=cfg["lr"], lr_scheduler_type=cfg["lr_scheduler"], logging_steps=1,
                              save_strategy="no", seed=seed, max_tool_calls=cfg["max_tool_calls"], disable_tqdm=True, **extra)
        hist = {f"{s} {k}": [] for s in SPLITS for k in ("EM", "#Tool")}
        hist.update(truncated=[], step_time=[], stage=[])

        hist.update({f"diag {s} {k}": [] for s in SPLITS for k in DIAG_KEYS}); hist["n_opt_snapshots"] = []
        fact_ids = {s: [str(e.id) for e in synthetic_arithmetic(kind=s)] for s in ("known", "unknown")}

        def _m(x): return round(float(np.mean(x)), 4) if len(x) else None

        def record_diagnostics(st, sp, n, step):
            "Issue 10: per split, the mechanisms behind the accuracy loss (see ParetoPOState._diagnostics)."
            lr = st.last_rows
            ok, good, f1, adv, no = lr["scorable"], lr["correct"], lr["front1"], lr["adv"], lr["n_opt"]
            for s in SPLITS:
                grp = [j for j in range(len(sp) // g) if sp[j * g] == s]
                mixed = [j for j in grp if good[j * g:(j + 1) * g].any() and (ok[j * g:(j + 1) * g] & ~good[j * g:(j + 1) * g]).any()]
                hist[f"diag {s} front1_wrong"].append(_m([bool((f1 & ~good & ok)[j * g:(j + 1) * g].any()) for j in mixed]))
                hist[f"diag {s} mixed"].append(_m([1.0 if j in mixed else 0.0 for j in grp]))
                hist[f"diag {s} n_opt_zero"].append(_m([no[j * g] == 0 for j in grp if not np.isnan(no[j * g])]))
                m = (sp == s) & ok
                hist[f"diag {s} adv_correct_call"].append(_m(adv[m & good & (n > 0)]))
                hist[f"diag {s} adv_correct_direct"].append(_m(adv[m & good & (n == 0)]))
                hist[f"diag {s} adv_wrong_direct"].append(_m(adv[m & ~good & (n == 0)]))
            if step % 10 == 0 or step == 1:
                hist["n_opt_snapshots"].append(dict(step=step, **{s: [None if np.isnan(v) else v for v in (st.n_opt.get(q) for q in ids)]
                                                                  for s, ids in fact_ids.items()}))

        class History(TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                b = tr.pp_last_batch
                if b is None: return
                sp = np.array([split_of.get(q, "?") for q in b["qids"]])
                c, n = np.asarray(b["correct"], float), np.asarray(b["n_calls"], float)
                for s in SPLITS:
                    m = sp == s
                    hist[f"{s} EM"].append(round(100 * float(c[m].mean()), 2) if m.any() else None)
                    hist[f"{s} #Tool"].append(round(float(n[m].mean()), 3) if m.any() else None)
                rs = rf.last_rollouts or []
                hist["truncated"].append(int(sum(r.truncated for r in rs)))
                hist["stage"].append(int(tr.pareto_state.stage) if tr.pareto_state is not None else 0)
                if tr.pareto_state is not None and tr.pareto_state.last_rows: record_diagnostics(tr.pareto_state, sp, n, state.global_step)

        tr = ParetoPOTrainer(model=model, processing_class=tok, args=args, csv_log=False,
                             reward_funcs=[make_example_reward(train), tool_calls_reward],
                             train_dataset=examples_to_dataset(train), rollout_func=rf)
        tr.remove_callback(PrinterCallback); tr.remove_callback(ProgressCallback)
        tr.add_callback(History())
        t1 = time.perf_counter()
        tr.train()
        train_s = time.perf_counter() - t1
        hist["step_time"] = [round(h["step_time"], 3) for h in tr.state.log_history if "step_time" in h]
        counts = dict(tr.pp_counts)
    ev = evaluate_questions(model, tok, eval_sets(cfg), cfg, seed=cfg["eval_seed"] + 10_000)
    return dict(kind="run", name=name, estimator=estimator, options=extra, seed=seed, history=hist, eval=ev, guards=counts,
                train_seconds=round(train_s, 1), seconds=round(time.perf_counter() - t0, 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=80); p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--prompts", type=int, default=16); p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4); p.add_argument("--lr-scheduler", default="constant")
    p.add_argument("--jobs", type=int, default=2); p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-hard", type=int, default=100); p.add_argument("--eval-samples", type=int, default=4)
    p.add_argument("--variants", default="all", help="comma-separated variant names, or all")
    p.add_argument("--out", default=str(ROOT / "results" / "repro.json"))
    p.add_argument("--smoke", action="store_true", help="3 steps, 1 seed, 2 variants, small eval (pipeline check)")
    p.add_argument("--append", action="store_true", help="keep the runs already in --out (same settings) and add the missing (variant, seed) runs")
    a = p.parse_args(argv)
    if a.smoke: a.steps, a.seeds, a.eval_hard, a.eval_samples, a.variants = 3, 1, 20, 1, "grpo,paretopo"
    cfg = dict(steps=a.steps, seeds=a.seeds, prompts=a.prompts, group=a.group, lr=a.lr, lr_scheduler=a.lr_scheduler,
               max_new_tokens=96, max_tool_calls=4, eval_hard=a.eval_hard, eval_samples=a.eval_samples, eval_seed=0,
               warmstart_steps=1000, warmstart_seed=0, train_mix={"known": 1/3, "unknown": 1/3, "hard": 1/3},
               jobs=a.jobs, threads=a.threads, temperature=1.0, weights=[0.6, 0.4], tool_alpha=0.5, rank_beta=0.5,
               dhv_gamma=0.9, stage1_fraction=0.5, optimizer="AdamW (TRL default), one gradient step per batch, loss_type dapo, KL beta 0")
    variants = VARIANTS if a.variants == "all" else [v for v in VARIANTS if v[0] in a.variants.split(",")]
    jobs = [("__warmstart__", None, None, None, cfg)] + [(n, e, x, s, cfg) for s in range(a.seeds) for n, e, x in variants]
    import paretopo
    from paretopo.tasks import synthetic_arithmetic  # noqa: F401 (fail early)
    out = Path(a.out)
    res = dict(meta=dict(cfg=cfg, partial=True, planned=len(jobs) - 1, completed=0, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         wall_seconds=None, trainer="paretopo.trainer.ParetoPOTrainer (TRL GRPOTrainer subclass)",
                         variants=[dict(name=n, estimator=e, options=x) for n, e, x in variants], cpu_count=os.cpu_count(),
                         smoke=a.smoke, invocations=[]),
               eval_questions={s: [e.prompt for e in exs] for s, exs in eval_sets(cfg).items()}, warmstart=None, runs=[])
    prior_wall = 0.0
    if a.append and out.exists():
        old = json.loads(out.read_text())
        same = {k: v for k, v in cfg.items() if k not in ("seeds", "jobs", "threads")}
        diff = [k for k, v in same.items() if old["meta"]["cfg"].get(k) != v]
        if diff: raise SystemExit(f"--append: settings differ from {out}: {diff}")
        if old["eval_questions"] != res["eval_questions"]: raise SystemExit("--append: evaluation questions differ")
        if old.get("warmstart"):  # the cached warm start is not bitwise reproducible across machines/torch builds: never mix two
            from paretopo.warmstart import warm_started_model
            ws = warm_started_model(steps=cfg["warmstart_steps"], seed=cfg["warmstart_seed"])[2]
            if ws.get("loss_last") != old["warmstart"]["stats"].get("loss_last"):
                raise SystemExit(f"--append: the cached warm start (final loss {ws.get('loss_last')}) is not the one {out} was made with "
                                 f"(final loss {old['warmstart']['stats'].get('loss_last')}); write to a new --out")
        done = {(r["name"], r["seed"]) for r in old["runs"]}
        jobs = [j for j in jobs if j[0] != "__warmstart__" and (j[0], j[3]) not in done] if old.get("warmstart") else [j for j in jobs if (j[0], j[3]) not in done]
        res["warmstart"], res["runs"] = old.get("warmstart"), list(old["runs"])
        have = {r["name"] for r in old["runs"]} | {n for n, _, _ in variants}   # the file lists every variant it holds
        res["meta"]["variants"] = [dict(name=n, estimator=e, options=x) for n, e, x in VARIANTS if n in have]
        res["meta"].update(started=old["meta"]["started"], invocations=list(old["meta"].get("invocations") or
                           [dict(wall_seconds=old["meta"]["wall_seconds"], runs=old["meta"]["completed"])]))
        res["meta"]["completed"] = len(res["runs"])
        res["meta"]["planned"] = len(res["runs"]) + sum(j[0] != "__warmstart__" for j in jobs)
        prior_wall = sum(i["wall_seconds"] for i in res["meta"]["invocations"])
    n_before = res["meta"]["completed"]
    t0 = time.perf_counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(a.jobs, initializer=_init_worker, initargs=(a.threads,)) as pool:
        for r in pool.imap_unordered(run_one, jobs):
            if r["kind"] == "warmstart": res["warmstart"] = r
            else:
                res["runs"].append(r); res["meta"]["completed"] += 1
                print(f"[{time.perf_counter() - t0:7.0f} s] {r['name']:<28} seed {r['seed']}  train {r['train_seconds']:.0f} s  "
                      + "  ".join(f"{k}: EM {100 * sum(v['correct']) / (len(v['correct']) * v['samples']):.0f} "
                                  f"#T {sum(v['calls']) / (len(v['calls']) * v['samples']):.2f}" for k, v in r["eval"].items() if "T=1" in k),
                      flush=True)
            res["meta"]["wall_seconds"] = round(prior_wall + time.perf_counter() - t0, 1)
            write_json_atomic(out, res, indent=None)
    res["meta"]["partial"] = res["meta"]["completed"] < res["meta"]["planned"]
    res["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res["meta"]["invocations"].append(dict(wall_seconds=round(time.perf_counter() - t0, 1), runs=res["meta"]["completed"] - n_before))
    res["meta"]["wall_seconds"] = round(prior_wall + time.perf_counter() - t0, 1)
    write_json_atomic(out, res, indent=None)
    print(f"bench repro: runs={res['meta']['completed']} wall_s={res['meta']['wall_seconds']} partial={res['meta']['partial']}")
    return 0


if __name__ == "__main__":
    quiet()
    sys.exit(main())
