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
        "ServerApp": {"open_browser": False, "ip": "127.0.0.1", "port": port, "port_retries": 0},
        "IdentityProvider": {"token": token}}))
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8",
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
        for name in ("paretopo", "python3"):  # python3: the kernelspec the notebooks' metadata names
            assert Path(specs[name]["spec"]["argv"][0]).parent == venv_bin, (name, specs[name]["spec"]["argv"])
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    assert proc.returncode is not None
    with pytest.raises(OSError): get(f"{base}/api/status?token={token}", timeout=2)  # stopped: nothing serves the port
