"""Run every test and print one closing line `N passed, N failed[, N skipped]`.

Notebooks run through `nbdev_test --flags slow` (the command CI is specified to run); each notebook
counts as one test. pytest runs `tests/`; its counts come from its JUnit XML. Cells flagged `gpu`
cannot run on a CPU machine and are counted as skipped, never as passed.
"""
import argparse, json, os, re, subprocess, sys, tempfile, time
import xml.etree.ElementTree as ET
from pathlib import Path
from run_kernels import kernel_check_counts  # tools/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parent.parent


def gpu_cells(nb_path: Path) -> int:
    "Number of code cells flagged `#| gpu` in a notebook."
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    flag = re.compile(r"^#\|\s*gpu\b", re.M)
    return sum(1 for c in cells if c["cell_type"] == "code" and flag.search("".join(c["source"])))


def venv_tool(name: str) -> str:
    "A console script of the running interpreter's environment (never one found elsewhere on PATH)."
    p = Path(sys.executable).parent / name  # not resolved: a venv's python is a symlink to the system one
    if not p.exists(): sys.exit(f"run_tests.py: {name} not found beside {sys.executable}; install the dev extras (pip install -e '.[dev]')")
    return str(p)


def run_notebooks(flags: str, path: str | None) -> tuple[int, int, int]:
    nbs = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts)
    if path: nbs = [p for p in nbs if p.match(path) or p.name == Path(path).name]
    cmd = [venv_tool("nbdev_test"), "--flags", flags, "--do_print", "--timing"] + (["--path", path] if path else [])
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(proc.stdout); sys.stderr.write(proc.stderr)
    failed_names = set()
    if "nbdev Tests Failed On The Following Notebooks" in proc.stderr:
        tail = proc.stderr.split("nbdev Tests Failed On The Following Notebooks")[-1]
        failed_names = {ln.strip() for ln in tail.splitlines() if ln.strip().endswith(".ipynb")}
    elif proc.returncode != 0:
        failed_names = {p.name for p in nbs}  # nbdev_test itself broke: count every notebook as failed
    n_failed = len(failed_names)
    n_passed = len(nbs) - n_failed
    if "No files were eligible for testing" in proc.stdout + proc.stderr:  # nbdev ran nothing: nothing passed
        n_passed = 0
    n_gpu = sum(gpu_cells(p) for p in nbs)
    print(f"notebooks: {n_passed} passed, {n_failed} failed, {n_gpu} gpu cells skipped ({time.time()-t0:.0f} s)", flush=True)
    return n_passed, n_failed, n_gpu


def run_pytest(extra: list[str]) -> tuple[int, int, int]:
    if not any((ROOT / "tests").glob("test_*.py")): return 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-rs", f"--junitxml={xml}", *extra]
        print("$", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT)
        if not xml.exists(): return 0, 1, 0
        suites = ET.parse(xml).getroot()
        suites = [suites] if suites.tag == "testsuite" else list(suites)
        tot = sum(int(s.get("tests", 0)) for s in suites)
        bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
        skip = sum(int(s.get("skipped", 0)) for s in suites)
        if proc.returncode not in (0, 5) and bad == 0: bad = 1  # pytest failed without a test failing (e.g. collection)
        return tot - bad - skip, bad, skip


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--flags", default="slow", help="nbdev_test flags to force (default: slow)")
    ap.add_argument("--path", default=None, help="only notebooks matching this name or glob")
    ap.add_argument("--no-pytest", action="store_true", help="run the notebooks only")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments passed to pytest")
    a = ap.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    # children (notebooks, pytest, their subprocesses) find this environment's tools first
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    nb = run_notebooks(a.flags, a.path)
    nb = tuple(x + y for x, y in zip(nb, kernel_check_counts(a.path)))  # every notebook through a real Jupyter kernel
    py = (0, 0, 0) if a.no_pytest else run_pytest(a.pytest_args)
    passed, failed, skipped = (x + y for x, y in zip(nb, py))
    print(f"pytest: {py[0]} passed, {py[1]} failed, {py[2]} skipped")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
