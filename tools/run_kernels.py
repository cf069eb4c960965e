"""Execute every notebook once through a real Jupyter kernel, the way JupyterLab runs it.

`nbdev_test` executes notebooks in-process (execnb's shell), which hides what a reader meets in
JupyterLab: the kernel's working directory, display of rich outputs (plotly's mime bundle, widget
progress bars), `%` magics, stderr warnings from front-end integrations. This script runs each
notebook through nbclient + ipykernel (the kernel JupyterLab starts) in a fresh kernel, top to bottom,
and fails a notebook on

- an error output (any cell raising; the first one is named with its cell number),
- a widget or renderer warning on stderr (e.g. tqdm's "IProgress not found", plotly renderer notes),
- a figure without its mime bundle: a plotly/matplotlib figure shown only as text, or a cell calling
  `.show()` on a figure that produced no figure output,
- the per-notebook timeout.

Work shared with `nbdev_test --flags slow` (which runs every cell, slow ones included, with the
notebook's folder as working directory): by default cells flagged `#| slow` are NOT executed here
(the kernel starts in the repository root instead, the other directory a reader is likely to use);
`--slow` runs them too. Cells flagged `#| gpu` ARE executed: on a machine without CUDA they must skip
themselves with a one-line message, because a reader's "Run All" runs them too.

Ends with one line `N passed, N failed, N skipped` (a notebook is one test; skipped: none unless
`--path` matches nothing). Exit status 1 on any failure.
"""
from __future__ import annotations
import argparse, json, os, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAG = r"^\s*#\|\s*{}\b"
FIGURE_MIMES = ("application/vnd.plotly.v1+json", "image/png", "image/svg+xml", "image/jpeg")
# text that means a front end could not show something: widgets, renderers, display integrations
WARN_RE = re.compile(r"IProgress not found|ipywidgets|jupyter_?widgets|widget|renderer|TqdmWarning|"
                     r"Javascript|nbformat>=|mime ?type|Matplotlib is currently using agg", re.I)
FIGURE_TEXT_RE = re.compile(r"^(Figure\(|<Figure size|<matplotlib\.|go\.Figure\()")


def notebooks(path: str | None = None) -> list[Path]:
    "The notebooks `nbdev_test` runs (underscore-prefixed and checkpoint files excluded), optionally filtered."
    nbs = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts)
    if path: nbs = [p for p in nbs if p.match(path) or p.name == Path(path).name]
    return nbs


def has_flag(cell: dict, flag: str) -> bool:
    src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    return cell["cell_type"] == "code" and re.search(FLAG.format(flag), src, re.M) is not None


def output_problems(cell: dict, idx: int) -> list[str]:
    "Problems in one executed cell's outputs: error outputs, widget/renderer warnings, figures without a mime bundle."
    probs, src = [], "".join(cell["source"])
    shown_figure = False
    for o in cell.get("outputs", []):
        t = o.get("output_type")
        if t == "error":
            probs.append(f"cell {idx}: {o.get('ename')}: {str(o.get('evalue'))[:300]}")
        elif t == "stream" and o.get("name") == "stderr":
            text = "".join(o.get("text", ""))
            for line in text.splitlines():
                if WARN_RE.search(line): probs.append(f"cell {idx}: front-end warning on stderr: {line.strip()[:300]}")
        elif t in ("display_data", "execute_result"):
            data = o.get("data", {})
            if any(m in data for m in FIGURE_MIMES): shown_figure = True
            plain = "".join(data.get("text/plain", ""))
            if FIGURE_TEXT_RE.match(plain.strip()) and not any(m in data for m in FIGURE_MIMES):
                probs.append(f"cell {idx}: a figure shown as text only ({plain.strip()[:60]!r}), no figure mime bundle")
            if "application/vnd.jupyter.widget-view+json" in data and "model_id" not in data["application/vnd.jupyter.widget-view+json"]:
                probs.append(f"cell {idx}: a widget output without a model id")
    ran = cell.get("execution_count") is not None  # cells after a failing one never ran: nothing to judge
    calls_show = ran and re.search(r"\.show\(\s*\)", src) is not None and not has_flag(cell, "gpu")
    if calls_show and not shown_figure and not any(p.startswith(f"cell {idx}:") for p in probs):
        probs.append(f"cell {idx}: calls .show() but produced no figure mime bundle ({', '.join(FIGURE_MIMES[:2])}, ...)")
    return probs


def run_notebook(nb_path: Path, *, timeout: float, slow: bool, cwd: Path, kernel_name: str) -> dict:
    "Execute one notebook in a fresh kernel; return {name, ok, seconds, problems, cells_run, cells_skipped}."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    nb = nbformat.read(nb_path, as_version=4)
    skipped = 0
    for c in nb.cells:
        if c.cell_type == "code": c.outputs = []  # a fresh run: stored outputs must not count
        if c.cell_type == "code" and not slow and has_flag(c, "slow"):
            c.cell_type, skipped = "raw", skipped + 1  # nbclient executes code cells only
            del c["outputs"], c["execution_count"]
    deadline = time.monotonic() + timeout
    client = NotebookClient(nb, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}},
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())), allow_errors=False,
                            record_timing=False, extra_arguments=["--IPKernelApp.log_level=ERROR"])  # not its TCP notice
    t0, probs = time.monotonic(), []
    try:
        client.execute()
    except CellTimeoutError:
        probs.append(f"timed out after {timeout:.0f} s (per-notebook limit)")
    except DeadKernelError as e:
        probs.append(f"kernel died: {e}")
    except CellExecutionError:
        pass  # the error output is on the cell; reported below with its cell number
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code": probs += output_problems(c, i)
    return dict(name=nb_path.name, ok=not probs, seconds=round(time.monotonic() - t0, 1), problems=probs,
                cells_run=sum(c.cell_type == "code" for c in nb.cells), cells_skipped=skipped)


def kernel_check_counts(path: str | None = None, *, extra_args: tuple = ()) -> tuple[int, int, int]:
    "Run this check in a subprocess (its output passed through); `(passed, failed, skipped)` from its closing line."
    import subprocess
    cmd = [sys.executable, str(Path(__file__).resolve()), *(["--path", path] if path else []), *extra_args]
    print("$", " ".join(cmd), flush=True)
    proc, lines = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True), []
    for line in proc.stdout:  # streamed: a long run shows progress notebook by notebook
        sys.stdout.write(line); sys.stdout.flush(); lines.append(line)
    proc.wait()
    m = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", "".join(lines), re.M)
    if m is None or (proc.returncode != 0 and int(m[2]) == 0): return (int(m[1]) if m else 0), 1, (int(m[3]) if m else 0)
    return int(m[1]), int(m[2]), int(m[3])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=None, help="only notebooks matching this name or glob")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    ap.add_argument("--slow", action="store_true", help="also run cells flagged `#| slow` (nbdev_test --flags slow runs them)")
    ap.add_argument("--cwd", choices=["root", "nbs"], default=None,
                    help="kernel working directory: the repository root or nbs/ (default: root without --slow, nbs with it)")
    ap.add_argument("--kernel", default="python3", help="kernel name (default python3: this interpreter's ipykernel)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="notebooks run at once, one kernel each (default: min(2, CPUs), as nbdev_test's workers)")
    ap.add_argument("--json", default=None, help="also write the per-notebook results to this JSON file")
    a = ap.parse_args(argv)
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec(a.kernel)
    cwd = ROOT / "nbs" if (a.cwd or ("nbs" if a.slow else "root")) == "nbs" else ROOT
    nbs = notebooks(a.path)
    print(f"$ real-kernel check: {len(nbs)} notebooks, kernel {a.kernel} ({spec.argv[0]}), working directory {cwd}, "
          f"{'all cells' if a.slow else 'cells flagged slow skipped (nbdev_test runs them)'}, {a.timeout:.0f} s per notebook, "
          f"{a.jobs} at a time", flush=True)
    results, t0 = [], time.monotonic()
    kw = dict(timeout=a.timeout, slow=a.slow, cwd=cwd, kernel_name=a.kernel)
    if min(a.jobs, len(nbs)) > 1:  # one kernel per worker process, like nbdev_test's workers; reported in order
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial
        pool = ProcessPoolExecutor(max_workers=a.jobs, mp_context=multiprocessing.get_context("spawn"))
        runs = pool.map(partial(run_notebook, **kw), nbs)
    else: runs = (run_notebook(p, **kw) for p in nbs)
    for r in runs:
        results.append(r)
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['name']:<28} {r['seconds']:7.1f} s  ({r['cells_run']} cells run, "
              f"{r['cells_skipped']} slow skipped)", flush=True)
        for pr in r["problems"]: print(f"     {pr}", flush=True)
    if a.json:
        sys.path.insert(0, str(ROOT))
        from paretopo.files import write_json_atomic
        write_json_atomic(a.json, dict(cwd=str(cwd), slow=a.slow, kernel=a.kernel, seconds=round(time.monotonic() - t0, 1), results=results))
    n_fail = sum(not r["ok"] for r in results)
    n_skip = 1 if not nbs else 0
    if not nbs: print(f"SKIPPED: no notebook matches {a.path!r}")
    print(f"kernel notebooks: {len(nbs) - n_fail} passed, {n_fail} failed ({time.monotonic() - t0:.0f} s)")
    print(f"{len(nbs) - n_fail} passed, {n_fail} failed, {n_skip} skipped")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
