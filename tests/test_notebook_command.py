"""The README's "Read and run the notebooks" command, run verbatim: it must install, register the kernel
and start JupyterLab serving nbs/. Headless through Jupyter's own configuration (a config directory with
`open_browser=False`, a port and a token; the data directory where `ipykernel install --user` writes is a
temporary one, so the user's real Jupyter setup is untouched), with a bare PATH. Then stopped.
"""
import json, os, re, signal, socket, subprocess, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_notebook_command() -> str:
    "The one bash command of the README section `## Read and run the notebooks`."
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Read and run the notebooks\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no section '## Read and run the notebooks'"
    blocks = re.findall(r"```bash\n(.*?)```", m.group(1), re.S)
    assert len(blocks) == 1, f"the section should hold exactly one bash command, found {len(blocks)}"
    return blocks[0].strip()


def bare_path() -> str:
    """A bare PATH: /usr/bin:/bin, preceded by the directory of the interpreter `.venv` was made with when that is
    another one (e.g. pyenv's). `python3 -m venv .venv` over a venv made by a different python3 rewrites its
    pyvenv.cfg to the new one and breaks it; in a fresh clone, or CI with a bare PATH, both are /usr/bin/python3."""
    cfg = ROOT / ".venv" / "pyvenv.cfg"
    home = None
    if cfg.exists():
        home = next((ln.split("=", 1)[1].strip() for ln in cfg.read_text().splitlines() if ln.split("=")[0].strip() == "home"), None)
    return ":".join(dict.fromkeys([p for p in (home, "/usr/bin", "/bin") if p]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def test_readme_command_has_the_promised_parts():
    cmd = readme_notebook_command()
    assert '".[notebooks]"' in cmd and "-c constraints.txt torch==2.13.0" in cmd, cmd
    assert '--name paretopo --display-name "Python (paretopo)"' in cmd, cmd
    assert cmd.endswith("--notebook-dir=nbs"), cmd


@pytest.mark.skipif(os.environ.get("PARETOPO_SKIP_JUPYTERLAB") == "1", reason="PARETOPO_SKIP_JUPYTERLAB=1 set")
def test_readme_command_starts_jupyterlab_on_nbs(tmp_path):
    cmd = readme_notebook_command()
    port, token = free_port(), "paretopo-test-token"
    cfg = tmp_path / "config"; cfg.mkdir()
    (cfg / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"open_browser": False, "ip": "127.0.0.1", "port": port, "port_retries": 0,
                      "allow_root": os.geteuid() == 0},  # CI containers run as root; Jupyter refuses that unless told
        "IdentityProvider": {"token": token}}))
    env = {"PATH": bare_path(), "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8",
           "JUPYTER_CONFIG_DIR": str(cfg), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base, deadline, contents = f"http://127.0.0.1:{port}", time.monotonic() + 600, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = get(f"{base}/api/contents?token={token}")
                if status == 200: contents = json.loads(body); break
            except OSError: time.sleep(1)
        assert contents is not None, f"JupyterLab did not answer on {base} (exit {proc.poll()}):\n" + log.read_text()[-3000:]
        names = {c["name"] for c in contents["content"]}
        assert {"index.ipynb", "01_pareto.ipynb", "_quarto.yml"} <= names, sorted(names)  # the root is nbs/
        status, page = get(f"{base}/lab/tree/01_pareto.ipynb?token={token}")
        assert status == 200 and b"JupyterLab" in page
        status, body = get(f"{base}/api/kernelspecs?token={token}")
        specs = json.loads(body)["kernelspecs"]
        assert specs["paretopo"]["spec"]["display_name"] == "Python (paretopo)", sorted(specs)
        venv_bin = ROOT / ".venv" / "bin"  # not resolved: a venv's python is a symlink to the system one
        assert Path(specs["paretopo"]["spec"]["argv"][0]).parent == venv_bin, specs["paretopo"]["spec"]["argv"]
        # python3, the kernelspec the notebooks' metadata names, is the server's own: jupyter_client runs argv[0]
        # "python" as the server's sys.executable, and the server is .venv/bin/jupyter
        assert specs["python3"]["spec"]["argv"][0] == "python", specs["python3"]["spec"]["argv"]
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    assert proc.returncode is not None
    with pytest.raises(OSError): get(f"{base}/api/status?token={token}", timeout=2)  # stopped: nothing serves the port
