#!/usr/bin/env bash
# The README's test command: install everything into a fresh virtual environment and run every test
# (all notebooks with `nbdev_test --flags slow`, then pytest), ending with `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${PARETOPO_VENV:-.venv}"

# The sandbox's kernel isolation needs bubblewrap; without it the isolation tests skip and say why.
# apt-get runs with the sbin directories on PATH: CI runs this script under `env -i PATH=/usr/bin:/bin`, and
# dpkg and maintainer scripts expect root's usual PATH (older dpkg refuses to run without ldconfig on it).
sys_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (export PATH="$sys_path" DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
      || echo "test.sh: could not install bubblewrap; sandbox isolation tests will skip" >&2
  else
    echo "test.sh: bubblewrap (bwrap) not found; sandbox isolation tests will skip" >&2
  fi
fi

python3 -m venv "$venv" || exit 1
# Every tool the tests run comes from the venv: its bin first on PATH, for this script and every child
# (nothing installed by hand elsewhere on the machine may be picked up).
export PATH="$(cd "$venv" && pwd)/bin:$PATH"
"$venv/bin/python" -m pip install -q --upgrade pip || exit 1
# torch first and exactly: the CPU wheel on disk; an unpinned torch would pull a CUDA build.
"$venv/bin/python" -m pip install -q -c constraints.txt "torch==2.13.0" || exit 1
"$venv/bin/python" -m pip install -q -c constraints.txt -e ".[dev]" || exit 1
"$venv/bin/python" -m pip check || exit 1
# trl 1.15.0 (the newest Unsloth accepts) is not installed beside 1.16; its wheel is read by a contract test.
mkdir -p .cache/wheels
"$venv/bin/python" -m pip download -q --no-deps -d .cache/wheels "trl==1.15.0" >/dev/null 2>&1 \
  || echo "test.sh: could not download the trl 1.15.0 wheel; its contract test will skip" >&2
export PARETOPO_WHEELS="$PWD/.cache/wheels"
exec "$venv/bin/python" tools/run_tests.py "$@"
