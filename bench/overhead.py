"""Per-step training overhead of ParetoPO's advantages over GRPO's, in one run with the same seed and batch.

Each repeat trains the tiny model on the synthetic tool task for a few steps with estimator `grpo`, then `paretopo`
(stage 1 for the first half of the steps, stage 2 for the second half), in alternating order, from the same seed,
weights and data. The learning rate is 0 so the policy, hence every rollout batch, is identical for both estimators:
the steps differ only in how advantages are computed (the loss, backward and optimiser step still run). Reported: median wall time per optimiser step (TRL's `step_time`, generation included) per
estimator, the median over repeats and steps of the paired ratio paretopo/grpo (same step index = same batch), and the time spent inside the advantage layer
(measured directly, so the estimator's own cost is visible under machine noise).
Usage: python bench/overhead.py [--repeats 3] [--steps 6] [--prompts 8] [--group 8]

With --archive: the stage-1 archive's bookkeeping per step at k = 4 with 1e3, 1e4 and 1e5 archived rows (one question,
the worst case: every row in one archive), as a share of a tiny-model GRPO step measured in the same run. Per step:
`gain` of one group (--group rows) against the archive, `insert`, and `hv` (the metric read every step); median over
--archive-steps steps. Data: "uniform" raw rows (few on the front) and "front" rows (all mutually non-dominated, the
worst case for the front's size; stopped at 1e4 rows: every step then computes 8 exact k = 4 gains against the whole
front and its new HV, which at 1e5 front rows costs seconds). Each case runs twice: with a plain score (every row
rescored per read) and with a score carrying `cache_key` (new rows only). Also reported: one read after the score changed (an N_opt drop: every row rescored,
front and HV rebuilt), which is what every read cost before the archive became incremental.
Usage: python bench/overhead.py --archive [--archive-steps 30] [--group 8]
"""
import argparse, os, statistics, sys, tempfile, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1"); os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")
import numpy as np
import torch
torch.set_num_threads(1)
from transformers import PrinterCallback
from transformers.utils import logging as hl
hl.set_verbosity_error()
import paretopo.trainer as T
from paretopo.config import ParetoPOConfig
from paretopo.models import load_model
from paretopo.rollout import make_rollout_func
from paretopo.tasks import synthetic_arithmetic
from paretopo.tools import CalculatorTool

ADV_TIME = []
_orig = T.advantages_from_batch
def _timed(*a, **k):
    t0 = time.perf_counter(); r = _orig(*a, **k); ADV_TIME.append(time.perf_counter() - t0); return r
T.advantages_from_batch = _timed

def task_reward(prompts, completions, gold, **kw):  # in-group variance for an untrained model (see nbs/22_trainer)
    return [float(g[-1] in c) for c, g in zip(completions, gold)]

def run(estimator, *, steps, prompts, group, seed=0):
    ADV_TIME.clear()
    model, tok = load_model(backend="tiny", seed=seed)
    with tempfile.TemporaryDirectory() as d:
        cfg = ParetoPOConfig(output_dir=d, use_cpu=True, report_to=[], max_steps=steps, per_device_train_batch_size=prompts * group,
                             num_generations=group, max_completion_length=32, learning_rate=0.0, logging_steps=1,
                             save_strategy="no", seed=seed, max_tool_calls=2, disable_tqdm=True, advantage=estimator,
                             stage1_fraction=0.5)
        tr = T.ParetoPOTrainer(model=model, processing_class=tok, args=cfg, reward_funcs=[task_reward, T.tool_calls_reward],
                               train_dataset=T.examples_to_dataset(synthetic_arithmetic(4 * steps * prompts, kind="mixed", seed=seed)),
                               rollout_func=make_rollout_func(CalculatorTool(), max_tool_calls=2), csv_log=False)
        tr.remove_callback(PrinterCallback)
        tr.train()
        st = [h["step_time"] for h in tr.state.log_history if "step_time" in h]
        lengths = [h["completions/mean_length"] for h in tr.state.log_history if "completions/mean_length" in h]
        stages = sorted({h.get("paretopo/stage") for h in tr.state.log_history if "paretopo/stage" in h})
    return st[1:], statistics.median(ADV_TIME), stages, lengths  # step 0 pays one-off warm-up costs

def _score4(shift=0.0, keyed=False):
    "A k = 4 score in the style of ParetoPO's (raw -> rewards, vectorised); `shift` plays the role of an N_opt change."
    f = lambda raw: np.column_stack([raw[:, 0], np.exp(-0.5 * np.abs(raw[:, 1] - shift)), np.exp(-raw[:, 2]), 1.0 - raw[:, 3]])
    if keyed: f.cache_key = shift  # the archive may then score only new rows while the key is unchanged
    return f

def _raw_rows(kind, n, rng):
    if kind == "uniform": return rng.random((n, 4))
    X = np.abs(rng.normal(size=(n, 4))) + 1e-9; X /= np.linalg.norm(X, axis=1, keepdims=True)  # on the unit sphere
    return np.column_stack([X[:, 0], -2 * np.log(X[:, 1]), -np.log(X[:, 2]), 1 - X[:, 3]])  # _score4() maps these back onto X

ARCHIVE_CASES = [("uniform", 1_000), ("uniform", 10_000), ("uniform", 100_000), ("front", 1_000), ("front", 10_000)]

def archive_bench(*, steps=30, group=8):
    "Per-step bookkeeping of one question's archive at k = 4 (front data stops at 1e4 rows: see the docstring)."
    from paretopo.hypervolume import ParetoArchive
    rows = []
    for kind, n in ARCHIVE_CASES:
        res = {}
        for keyed in (False, True):
            rng = np.random.default_rng(n); arch = ParetoArchive(ref=np.zeros(4)); sc = _score4(keyed=keyed)
            arch.insert("q", _raw_rows(kind, n, rng), sc); arch.hv("q", sc)  # first read: the full build
            ts = []
            for _ in range(steps):
                grp = _raw_rows(kind, group, rng)
                t0 = time.perf_counter(); arch.gain("q", grp, sc); arch.insert("q", grp, sc); arch.hv("q", sc); ts.append(time.perf_counter() - t0)
            res[keyed] = statistics.median(ts)
        sc2 = _score4(0.05)
        t0 = time.perf_counter(); arch.hv("q", sc2); t_rebuild = time.perf_counter() - t0
        front = len(arch.points("q", sc2))
        rows.append((kind, n, res[False], res[True], t_rebuild, front))
        print(f"archive k=4 {kind:7s} rows={n:>6}: step {res[False] * 1e3:8.2f} ms, with cache_key {res[True] * 1e3:8.2f} ms (medians of {steps}), "
              f"rebuild after a score change {t_rebuild * 1e3:8.1f} ms, front {front}", flush=True)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3); p.add_argument("--steps", type=int, default=9)
    p.add_argument("--prompts", type=int, default=8); p.add_argument("--group", type=int, default=8)
    p.add_argument("--archive", action="store_true", help="measure the archive's per-step bookkeeping at k = 4 instead")
    p.add_argument("--archive-steps", type=int, default=30)
    a = p.parse_args(argv)
    if a.archive:
        rows = archive_bench(steps=a.archive_steps, group=a.group)
        steps, _, _, _ = run("grpo", steps=5, prompts=a.prompts, group=a.group)  # the tiny-model step, same run
        g_step = statistics.median(steps)
        print(f"tiny-model grpo step (batch {a.prompts} prompts x group {a.group}, 1 torch thread): {g_step * 1e3:.1f} ms (median of {len(steps)})")
        print("| data | archived rows | front | per step | share of a tiny step | with cache_key | share | rebuild after a score change |")
        print("|---|---|---|---|---|---|---|---|")
        for kind, n, t, tk, tr, f in rows:
            print(f"| {kind} | {n} | {f} | {t * 1e3:.2f} ms | {t / g_step * 100:.2f} % | {tk * 1e3:.2f} ms | {tk / g_step * 100:.2f} % | {tr * 1e3:.1f} ms |")
        worst = max(r[2] for r in rows); worst_k = max(r[3] for r in rows)
        print(f"bench overhead archive: worst_step_ms={worst * 1e3:.2f} worst_share_of_step={worst / g_step * 100:.2f}% "
              f"worst_share_with_cache_key={worst_k / g_step * 100:.2f}% tiny_step_ms={g_step * 1e3:.1f}")
        return
    res, lens = {"grpo": [], "paretopo": []}, {"grpo": [], "paretopo": []}
    for r in range(a.repeats):
        for est in (["grpo", "paretopo"] if r % 2 == 0 else ["paretopo", "grpo"]):
            steps, adv, stages, L = run(est, steps=a.steps, prompts=a.prompts, group=a.group)
            lens[est].append(L)
            res[est].append((steps, adv))
            print(f"repeat {r} {est:9s}: step {statistics.median(steps) * 1e3:7.1f} ms (median), min {min(steps) * 1e3:7.1f} ms  "
                  f"advantages {adv * 1e3:6.2f} ms  stages {stages}", flush=True)
    # the batch at step i is the same for both estimators (lr = 0, same seed): pair steps, then take the median ratio
    ratios = [tp / tg for (sp, _), (sg, _) in zip(res["paretopo"], res["grpo"]) for tp, tg in zip(sp, sg)]
    g_step = statistics.median(t for x in res["grpo"] for t in x[0]); p_step = statistics.median(t for x in res["paretopo"] for t in x[0])
    g_adv = statistics.median(x[1] for x in res["grpo"]); p_adv = statistics.median(x[1] for x in res["paretopo"])
    same = all(x == y for x, y in zip(lens["grpo"], lens["paretopo"]))
    print(f"same rollout batches for both estimators (per-step mean completion lengths equal): {same}")
    print(f"batch {a.prompts} prompts x group {a.group}, {a.steps} steps x {a.repeats} repeats, 1 torch thread")
    print(f"median step: grpo {g_step * 1e3:.1f} ms, paretopo {p_step * 1e3:.1f} ms; paired step ratios: median {statistics.median(ratios):.3f}, "
          f"quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}..{statistics.quantiles(ratios, n=4)[2]:.3f} over {len(ratios)} pairs")
    print(f"advantage layer: grpo {g_adv * 1e3:.2f} ms, paretopo {p_adv * 1e3:.2f} ms per step "
          f"(estimator cost difference = {(p_adv - g_adv) / g_step * 100:.2f} % of a grpo step)")
    # Shared, noisy machines: the fastest step of each estimator is the least disturbed measurement, and the
    # component ratio adds the measured estimator-cost difference to a grpo step (both printed beside the paired median).
    g_min = min(t for x in res["grpo"] for t in x[0]); p_min = min(t for x in res["paretopo"] for t in x[0])
    print(f"bench overhead: paretopo_over_grpo={statistics.median(ratios):.3f} min_step_ratio={p_min / g_min:.3f} "
          f"component_ratio={(g_step + p_adv - g_adv) / g_step:.4f} adv_ms_grpo={g_adv * 1e3:.2f} adv_ms_paretopo={p_adv * 1e3:.2f}")

if __name__ == "__main__":
    main()
