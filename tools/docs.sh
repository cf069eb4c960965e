#!/usr/bin/env bash
# Build the docs site without Quarto (tools/build_docs.py -> _docs/) and check it in headless Chromium
# (tools/check_docs.py; screenshots in ci-artifacts/docs/). Offline: no CDN, plotly.js from the installed plotly.
# Usage: tools/docs.sh [extra args for check_docs.py]. Python: $PARETOPO_DOCS_PYTHON, else .venv/bin/python, else python3.
# Exit 0 only if the build (every notebook processed by nbdev) and the browser check both pass.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PARETOPO_DOCS_PYTHON:-}
if [ -z "$py" ]; then if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi; fi

# System packages: chromium for the check, libjs-katex so that maths renders offline.
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ] || need+=(chromium)
[ -f /usr/share/javascript/katex/katex.min.js ] || need+=(libjs-katex)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "docs.sh: installing ${need[*]}"
    # root's usual PATH for dpkg and maintainer scripts (CI runs this under a reduced PATH)
    (export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" DEBIAN_FRONTEND=noninteractive
     apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
      || echo "docs.sh: could not install ${need[*]}" >&2
  else
    echo "docs.sh: missing ${need[*]} (apt-get install -y ${need[*]})" >&2
  fi
fi
# smalldocs renders the Quarto project; it belongs in the dev extras (smalldocs==0.5.4).
if ! "$py" -c "import smalldocs" 2>/dev/null; then
  echo "docs.sh: smalldocs missing in $py; installing smalldocs==0.5.4"
  "$py" -m pip install -q "smalldocs==0.5.4" || { echo "docs check: pages=0 failed=1"; exit 1; }
fi

"$py" tools/build_docs.py; build_rc=$?
"$py" tools/check_docs.py "$@"; check_rc=$?
echo "docs.sh: build exit $build_rc, check exit $check_rc"
[ "$build_rc" = 0 ] && [ "$check_rc" = 0 ]
