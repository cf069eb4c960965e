"""The command line as a user meets it, through the installed `paretopo` console script (issue 12).

User mistakes end in ONE line on stderr (`paretopo <cmd>: error: ...`) and exit status 2, and leave the
run directory exactly as it was; Ctrl-C during `paretopo train` / `paretopo eval` saves what is done, and
`--resume` then ends where an uninterrupted run ends (same weights, ParetoPO state, log rows, results).
"""
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="recipes need PyYAML (the train extra)")
PARETOPO = Path(sys.executable).parent / "paretopo"
if not PARETOPO.exists(): pytest.skip(f"no installed console script at {PARETOPO} (pip install -e .)", allow_module_level=True)


def run(args, *, cwd, env=None, timeout=300):
    "Run the console script; returns the CompletedProcess (text)."
    e = {k: v for k, v in os.environ.items() if k != "PARETOPO_DEBUG"}
    e.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1", **(env or {}))
    return subprocess.run([str(PARETOPO), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def listing(d: Path) -> dict:
    "Every path under `d` with its size and mtime: equal before and after means nothing was written."
    return {str(p.relative_to(d)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def tiny_recipe(**over) -> dict:
    "A recipe for the fresh tiny model on the synthetic task (sections replaced by `over`)."
    r = dict(model=dict(backend="tiny"), task=dict(name="synthetic", n=64, kind="mixed", seed=0), tool={},
             config=dict(output_dir="out", use_cpu=True, report_to=[], max_steps=2, num_generations=2,
                         per_device_train_batch_size=4, max_completion_length=16, learning_rate=1.0e-3,
                         logging_steps=1, save_strategy="steps", save_steps=2, max_tool_calls=1, seed=0))
    r.update(over)
    return r


def with_config(**kv) -> dict:
    r = tiny_recipe(); r["config"] = {**r["config"], **kv}; return r


def write_recipe(d: Path, r, name="r.yaml") -> Path:
    p = d / name
    p.write_text(r if isinstance(r, str) else yaml.safe_dump(r, sort_keys=False))
    return p


def assert_user_error(res, cmd: str, *fragments):
    "Exit 2, and stderr is exactly one line `paretopo <cmd>: error: ...` containing every fragment."
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert len(lines) == 1, f"stderr is not one line:\n{res.stderr[-3000:]}"
    assert lines[0].startswith(f"paretopo {cmd}: error: "), lines[0]
    for f in fragments: assert f in lines[0], (f, lines[0])
    assert "Traceback" not in res.stderr
    return lines[0]


BAD_MATH = '{"id": "a", "problem": "1+1?", "answer": "2"}\n{"id": "b", "problem": "2+2?"}\n'
BAD_MATH_TYPE = '{"id": "a", "problem": "1+1?", "answer": "2"}\n{"id": "b", "problem": "2+2?", "answer": [4]}\n'

# (case id, recipe (dict or raw YAML text), extra files {name: text}, extra args, env, fragments of the error line)
RECIPE_CASES = [
    ("config-typo", with_config(learning_rat=1e-4), {}, [], {}, ["config.learning_rat: unknown key", "did you mean `learning_rate`"]),
    ("task-typo", tiny_recipe(task=dict(name="synthetic", kindd="mixed")), {}, [], {}, ["task.kindd: unknown key", "did you mean `kind`"]),
    ("tool-typo", tiny_recipe(tool=dict(max_char=10)), {}, [], {}, ["tool.max_char", "did you mean `max_chars`"]),
    ("section-typo", {**tiny_recipe(), "modle": {}}, {}, [], {}, ["modle: unknown section", "did you mean `model`"]),
    ("task-name-typo", tiny_recipe(task=dict(name="synthetik")), {}, [], {}, ["task.name='synthetik'", "did you mean `synthetic`"]),
    ("backend-typo-with-warmstart", tiny_recipe(warmstart=dict(steps=5), model=dict(backend="tinyy")), {}, [], {},
     ["model.backend='tinyy'", "did you mean `tiny`"]),
    ("warmstart-and-model-conflict", tiny_recipe(warmstart=dict(steps=5), model=dict(backend="hf", name_or_path="./m")), {}, [], {},
     ["conflicts with the warmstart section", "model.name_or_path"]),
    ("rank-beta-range", with_config(rank_beta=2), {}, [], {}, ["config.rank_beta=2: must be in [0, 1]"]),
    ("objective-weights", with_config(objective_weights=[0.5, 0.6]), {}, [], {}, ["config.objective_weights", "sum to 1"]),
    ("lr-as-text", with_config(learning_rate="1e-4"), {}, [], {}, ["config.learning_rate='1e-4'", "write 1.0e-4"]),
    ("bad-enum", with_config(advantage="paretopoo"), {}, [], {}, ["config.advantage='paretopoo'", "must be one of"]),
    ("synthetic-value", tiny_recipe(task=dict(name="synthetic", n=8, p_hard=2)), {}, [], {}, ["task: p_hard must be in [0, 1]"]),
    ("three-problems", tiny_recipe(task=dict(name="synthetic", kindd="x"), tool=dict(max_char=3),
                                   config=dict(output_dir="out", learning_rat=1.0)), {}, [], {},
     ["3 problems", "task.kindd", "tool.max_char", "config.learning_rat"]),
    ("missing-data-file", tiny_recipe(task=dict(name="math", path="nope.jsonl")), {}, [], {}, ["task.path: no data file at", "nope.jsonl"]),
    ("malformed-row", tiny_recipe(task=dict(name="math", path="bad.jsonl")), {"bad.jsonl": BAD_MATH}, [], {},
     ["bad.jsonl:2: missing field(s) ['answer']"]),
    ("malformed-row-type", tiny_recipe(task=dict(name="math", path="bad.jsonl")), {"bad.jsonl": BAD_MATH_TYPE}, [], {},
     ["bad.jsonl:2: 'answer' must be"]),
    ("yaml-syntax", "task:\n  name: synthetic\nconfig:\n  max_steps: [1, 2\n", {}, [], {}, ["r.yaml:5: YAML syntax error"]),
    ("model-dir-missing", tiny_recipe(model=dict(backend="hf", name_or_path="./models/none")), {}, [], {},
     ["model.name_or_path: no model directory at", "models/none"]),
    ("hub-id-offline", tiny_recipe(model=dict(backend="hf", name_or_path="Qwen/NoSuchModel-0.5B")), {}, [], {"HF_HUB_OFFLINE": "1"},
     ["model.name_or_path='Qwen/NoSuchModel-0.5B': not a local directory", "HF_HUB_OFFLINE=1"]),
    ("env-var-unset", tiny_recipe(model=dict(backend="hf", name_or_path="${PARETOPO_TEST_UNSET_DIR}/m")), {}, [], {},
     ["PARETOPO_TEST_UNSET_DIR is not set"]),
    ("resume-nothing", tiny_recipe(), {}, ["--resume"], {}, ["--resume: no checkpoint in"]),
    ("resume-and-overwrite", tiny_recipe(), {}, ["--resume", "--overwrite"], {}, ["contradict"]),
    ("recipe-resume-missing", with_config(resume_from_checkpoint="./nope"), {}, [], {}, ["not a checkpoint directory", "nope"]),
]


# The table runs through the console script, one process per case; each process imports torch,
# transformers and TRL (to check `config:` against ParetoPOConfig), so the other cases of the same kinds run
# through the same entry point in this process (`paretopo.cli.main`, stderr captured), to keep the module fast.
TABLE = {"config-typo", "task-typo", "backend-typo-with-warmstart", "rank-beta-range", "malformed-row", "missing-data-file",
         "hub-id-offline", "yaml-syntax"}


@pytest.mark.parametrize("case", [c for c in RECIPE_CASES if c[0] in TABLE], ids=[c[0] for c in RECIPE_CASES if c[0] in TABLE])
def test_train_user_errors_console_script(tmp_path, case):
    name, recipe, files, args, env, fragments = case
    for f, text in files.items(): (tmp_path / f).write_text(text)
    r = write_recipe(tmp_path, recipe)
    before = listing(tmp_path)
    t0 = time.perf_counter()
    res = run(["train", r, *args], cwd=tmp_path, env=env)
    line = assert_user_error(res, "train", *fragments)
    assert listing(tmp_path) == before, "a failed command wrote or changed files"
    if name == "hub-id-offline":
        assert f"{tmp_path}/Qwen" not in line  # the hub id is never joined to the recipe's directory
        assert time.perf_counter() - t0 < 60, "offline, a hub id must fail fast"


@pytest.mark.parametrize("case", [c for c in RECIPE_CASES if c[0] not in TABLE], ids=[c[0] for c in RECIPE_CASES if c[0] not in TABLE])
def test_train_user_errors_in_process(tmp_path, monkeypatch, capsys, case):
    from paretopo.cli import main
    name, recipe, files, args, env, fragments = case
    for f, text in files.items(): (tmp_path / f).write_text(text)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv("PARETOPO_DEBUG", raising=False); monkeypatch.chdir(tmp_path)
    r = write_recipe(tmp_path, recipe)
    before = listing(tmp_path)
    code = main(["train", str(r), *args])
    err = capsys.readouterr().err
    assert_user_error(subprocess.CompletedProcess([], code, "", err), "train", *fragments)
    assert listing(tmp_path) == before, "a failed command wrote or changed files"


def test_missing_recipe_and_debug(tmp_path):
    res = run(["train", tmp_path / "nope.yaml"], cwd=tmp_path)
    assert_user_error(res, "train", f"no recipe file at {tmp_path / 'nope.yaml'}")
    dbg = run(["train", tmp_path / "nope.yaml", "--debug"], cwd=tmp_path)  # --debug: the traceback
    assert dbg.returncode == 1 and "Traceback" in dbg.stderr and "UserError: no recipe file" in dbg.stderr
    env = run(["train", tmp_path / "nope.yaml"], cwd=tmp_path, env={"PARETOPO_DEBUG": "1"})
    assert env.returncode == 1 and "Traceback" in env.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_extra(tmp_path):
    "A dependency from an extra that is not installed: one line naming the pip command (simulated by a shadow `yaml`)."
    shadow = tmp_path / "shadow"; shadow.mkdir()
    (shadow / "yaml.py").write_text("raise ModuleNotFoundError(\"No module named 'yaml'\", name='yaml')\n")
    r = write_recipe(tmp_path, tiny_recipe())
    res = run(["train", r], cwd=tmp_path, env={"PYTHONPATH": str(shadow)})
    assert_user_error(res, "train", "needs the yaml package", 'pip install "paretopo[train]"')


def in_process(argv, capsys) -> subprocess.CompletedProcess:
    "`paretopo.cli.main(argv)` in this process, as a CompletedProcess with its captured stderr."
    from paretopo.cli import main
    code = main([str(x) for x in argv])
    return subprocess.CompletedProcess(argv, code, "", capsys.readouterr().err)


def test_fresh_run_refuses_to_overwrite_checkpoints(tmp_path, capsys):
    ck = tmp_path / "out" / "checkpoint-2"; ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text("{}"); (ck / "paretopo_state.json").write_text("{}")
    (tmp_path / "out" / "paretopo_log.csv").write_text("step,loss\n1,0.5\n2,0.4\n")
    r = write_recipe(tmp_path, tiny_recipe())
    before = listing(tmp_path)
    assert_user_error(run(["train", r], cwd=tmp_path), "train", "checkpoint-2", "--resume", "--overwrite")
    assert listing(tmp_path) == before
    r2 = write_recipe(tmp_path, with_config(resume_from_checkpoint="out/checkpoint-1"), "r2.yaml")
    before = listing(tmp_path)
    assert_user_error(in_process(["train", r2, "--resume", ck], capsys), "train", "disagree")
    assert listing(tmp_path) == before


def test_eval_user_errors(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text(BAD_MATH)
    before = listing(tmp_path)
    res = run(["eval", "--backend", "tiny", "--task", "math", "--data", tmp_path / "bad.jsonl", "--out", tmp_path / "o"], cwd=tmp_path)
    assert_user_error(res, "eval", "bad.jsonl:2: missing field(s) ['answer']")
    assert listing(tmp_path) == before
    (tmp_path / "o").mkdir(); (tmp_path / "o" / "results.jsonl").write_text('{"id": "x"}\nnot json\n{"id": "y"}\n')
    before = listing(tmp_path)
    res = in_process(["eval", "--backend", "tiny", "--task", "synthetic", "--n", "4", "--out", tmp_path / "o", "--resume"], capsys)
    assert_user_error(res, "eval", "results.jsonl:2: not a JSON row")
    assert listing(tmp_path) == before


def test_bugs_keep_their_traceback(tmp_path):
    "An exception that is not a UserError is a bug in paretopo: it keeps its traceback and exit status 1."
    res = subprocess.run([sys.executable, "-c", "import sys; from paretopo.cli import main; import paretopo.cli as c; "
                          "c._lazy = lambda m, f: (lambda argv: 1 / 0); sys.exit(main(['train', 'x.yaml']))"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 1 and "ZeroDivisionError" in res.stderr and "Traceback" in res.stderr


def test_train_help_lists_resume_overwrite_debug(tmp_path):
    res = run(["train", "--help"], cwd=tmp_path)
    assert res.returncode == 0
    for flag in ("--resume", "--overwrite", "--debug"): assert flag in res.stdout, flag


# ---------------------------------------------------------------- Ctrl-C and resume

TIME_COLS = ("runtime", "per_second", "time", "total_flos")


def log_rows(path: Path) -> list[dict]:
    "The CSV log's rows without wall-clock columns (which differ between any two runs)."
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not any(t in k for t in TIME_COLS)} for r in csv.DictReader(f)]


def wait_for(pred, proc, timeout=240):
    t0 = time.time()
    while not pred():
        if proc.poll() is not None: raise AssertionError(f"process ended ({proc.returncode}) before the condition: {proc.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout: proc.kill(); raise AssertionError("timed out")
        time.sleep(0.02)


def popen(args, cwd):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    e.pop("PARETOPO_DEBUG", None)
    # SIGINT at its default in the child: a background shell (nohup ... &) starts us with SIGINT ignored, which
    # Python, and so the child, would inherit; the user's terminal delivers it with the default disposition
    return subprocess.Popen([str(PARETOPO), *map(str, args)], cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_train_sigint_then_resume_matches_uninterrupted(tmp_path, monkeypatch, capsys):
    safetensors = pytest.importorskip("safetensors.torch")
    torch = pytest.importorskip("torch")
    rec = tiny_recipe(warmstart=dict(steps=30, cache_dir=str(tmp_path / "ws")))
    rec["config"].update(max_steps=6, save_steps=2, per_device_train_batch_size=8, num_generations=4, temperature=1.0)
    r = write_recipe(tmp_path, rec)
    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 in the console-script runs: same float reduction order
    monkeypatch.chdir(tmp_path); monkeypatch.delenv("PARETOPO_DEBUG", raising=False)
    a = in_process(["train", r, "--output-dir", tmp_path / "A", "--no-progress"], capsys)  # uninterrupted, in this process
    assert a.returncode == 0, a.stderr[-3000:]

    p = popen(["train", r, "--output-dir", tmp_path / "B", "--no-progress"], tmp_path)
    wait_for(lambda: (tmp_path / "B" / "checkpoint-2" / "paretopo_state.json").exists(), p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("paretopo train: interrupted after step ") and last.endswith(" --resume"), last
    assert "Traceback" not in err
    step = int(last.split("after step ")[1].split(";")[0])
    assert 2 < step < 6 and (tmp_path / "B" / f"checkpoint-{step}" / "paretopo_state.json").exists(), (step, last)

    fresh = in_process(["train", r, "--output-dir", tmp_path / "B", "--no-progress"], capsys)  # a fresh run refuses
    assert_user_error(fresh, "train", "--resume", "--overwrite")
    b = run(["train", r, "--output-dir", tmp_path / "B", "--no-progress", "--resume"], cwd=tmp_path)
    assert b.returncode == 0, b.stderr[-3000:]
    assert json.loads(b.stdout.strip().splitlines()[-1])["resumed_from"] == str(tmp_path / "B" / f"checkpoint-{step}")

    wa = safetensors.load_file(tmp_path / "A" / "checkpoint-6" / "model.safetensors")
    wb = safetensors.load_file(tmp_path / "B" / "checkpoint-6" / "model.safetensors")
    w2 = safetensors.load_file(tmp_path / "A" / "checkpoint-2" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "resumed weights differ from the uninterrupted run's"
    assert not all(torch.equal(wa[k], w2[k]) for k in wa), "training did not change the weights: the comparison is vacuous"
    sa = json.loads((tmp_path / "A" / "checkpoint-6" / "paretopo_state.json").read_text())
    sb = json.loads((tmp_path / "B" / "checkpoint-6" / "paretopo_state.json").read_text())
    assert sa == sb and sa["state"]["step"] == 6
    la, lb = log_rows(tmp_path / "A" / "paretopo_log.csv"), log_rows(tmp_path / "B" / "paretopo_log.csv")
    assert [x["step"] for x in lb] == [x["step"] for x in la] and len(la) >= 6
    # the end-of-training record's train_loss is, by transformers' definition, the mean over this train() call
    # (steps after the checkpoint only, when resumed): every other value of every row must be equal
    assert la[:-1] == lb[:-1] and "train_loss" in la[-1]
    assert {k: v for k, v in la[-1].items() if k != "train_loss"} == {k: v for k, v in lb[-1].items() if k != "train_loss"}


def test_train_second_sigint_stops_at_once(tmp_path):
    rec = tiny_recipe(); rec["config"].update(max_steps=200, save_steps=2)
    r = write_recipe(tmp_path, rec)
    p = popen(["train", r, "--no-progress"], tmp_path)
    wait_for(lambda: (tmp_path / "out" / "checkpoint-2" / "paretopo_state.json").exists(), p)
    p.send_signal(signal.SIGINT); time.sleep(0.05); p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "paretopo train: interrupted; rerun with --resume to continue from the last checkpoint"
    assert "Traceback" not in err
    with open(tmp_path / "out" / "paretopo_log.csv", newline="") as f: rows = list(csv.DictReader(f))  # complete, parseable
    assert rows and all(r["step"].isdigit() for r in rows)


def test_eval_sigint_then_resume_matches_one_run(tmp_path):
    args = ["eval", "--backend", "tiny", "--task", "synthetic", "--n", "48", "--batch-size", "4", "--max-new-tokens", "48",
            "--threads", "1", "--temperature", "1.0", "--seed", "3"]
    from paretopo.cli import main
    assert main(args + ["--out", str(tmp_path / "one")]) == 0  # the uninterrupted run, in this process
    p = popen(args + ["--out", tmp_path / "two"], tmp_path)
    res = tmp_path / "two" / "results.jsonl"
    wait_for(lambda: res.exists() and res.read_text().count("\n") >= 4, p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    assert err.strip().splitlines() == ["paretopo eval: interrupted; rerun the same command with --resume to keep the questions already graded"]
    n_kept = len(res.read_text().splitlines())
    assert 4 <= n_kept < 48 and not (tmp_path / "two" / "summary.json").exists()
    two = run(args + ["--out", tmp_path / "two", "--resume"], cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    drop = ("wall_time_s", "questions_per_s")
    s1 = {k: v for k, v in json.loads((tmp_path / "one" / "summary.json").read_text()).items() if k not in drop}
    s2 = {k: v for k, v in json.loads((tmp_path / "two" / "summary.json").read_text()).items() if k not in drop}
    assert s1 == s2
    assert (tmp_path / "one" / "results.jsonl").read_text() == res.read_text()
