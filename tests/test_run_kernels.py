"""tools/run_kernels.py fails a notebook for what a reader would meet in JupyterLab, and only for that.

Three small notebooks run through the real path (nbclient + ipykernel): one that must pass (a plotly
figure with its mime bundle, a slow cell that would raise and is skipped, a gpu cell that skips itself),
one with every kind of problem, and one that exceeds its time limit.
"""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import run_kernels as rk  # noqa: E402


def write_nb(path: Path, *sources: str) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources]), path)
    return path


def run(path: Path, **kw):
    return rk.run_notebook(path, timeout=kw.pop("timeout", 300), slow=kw.pop("slow", False), cwd=path.parent, kernel_name="python3", **kw)


def test_good_notebook_passes(tmp_path):
    nb = write_nb(tmp_path / "good.ipynb",
                  "import plotly.graph_objects as go, plotly.io as pio\npio.renderers.default = 'plotly_mimetype'",
                  "fig = go.Figure(go.Bar(x=[1, 2], y=[3, 4]))\nfig.show()",
                  "#| slow\nraise RuntimeError('a slow cell: left to nbdev_test --flags slow')",
                  "#| gpu\nimport torch\nif not torch.cuda.is_available(): print('skipped: needs CUDA')\nelse: raise RuntimeError('unreachable here')",
                  "import os; print(os.getcwd())")
    r = run(nb)
    assert r["ok"], r["problems"]
    assert (r["cells_run"], r["cells_skipped"]) == (4, 1)


def test_every_problem_is_named(tmp_path):
    nb = write_nb(tmp_path / "bad.ipynb",
                  "import sys; print('TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.', file=sys.stderr)",
                  "class Fig:\n    def __repr__(self): return 'Figure({\"data\": []})'\nFig()",
                  "class Silent:\n    def show(self): pass\nSilent().show()",
                  "#| slow\nraise RuntimeError('skipped, never reported')",
                  "1 / 0",
                  "print('never runs')")
    r = run(nb)
    assert not r["ok"]
    text = "\n".join(r["problems"])
    assert "cell 0: front-end warning on stderr" in text and "IProgress" in text, text
    assert "cell 1: a figure shown as text only" in text, text
    assert "cell 2: calls .show() but produced no figure mime bundle" in text, text
    assert "cell 4: ZeroDivisionError" in text, text
    assert "skipped, never reported" not in text and len(r["problems"]) == 4, text


def test_slow_cells_run_with_slow(tmp_path):
    nb = write_nb(tmp_path / "slow.ipynb", "#| slow\nraise RuntimeError('now it runs')")
    r = run(nb, slow=True)
    assert not r["ok"] and "RuntimeError: now it runs" in r["problems"][0], r


def test_notebook_timeout(tmp_path):
    nb = write_nb(tmp_path / "sleepy.ipynb", "import time", "time.sleep(2)", "time.sleep(60)")
    r = run(nb, timeout=6)
    assert not r["ok"] and any("timed out after 6 s" in p for p in r["problems"]), r
    assert r["seconds"] < 40, r
