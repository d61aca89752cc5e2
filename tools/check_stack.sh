#!/usr/bin/env bash
# Run the whole test suite on another stack of dependency versions: a fresh virtual environment
# of PyPI packages, a clone of this checkout's HEAD, and `python -m pytest -q`.
#
# Why: the minimums in setup.py and the table of tested stacks in the README are what this
# prints; a stack that is only declared, never run, is a guess.
#
#   tools/check_stack.sh PYTHON [PIP_SPEC ...]      (PYTHON: the new environment's interpreter, a command or a path)
#   tools/check_stack.sh python3.10 torch==2.4.1 numpy==1.26.4 mujoco==3.12.0 mujoco-warp==3.13.0 warp-lang==1.18.0
#   tools/check_stack.sh python3.12 torch==2.11.0          # the GPU kit's Python and torch
#
# The PIP_SPECs are installed first and then held as constraints while the project installs, so
# pip cannot move them. Everything goes under WORK (default: a new temporary folder, removed at
# the end unless KEEP=1): WORK/venv, WORK/skillmimic (the clone) and WORK/shared, a link to the
# ../shared beside this checkout when there is one, so the tests that need the clips run.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n 2,16p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
PY=$1
shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d -t skillmimic-stack-XXXXXX)}
if [ "${KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
"$PY" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
printf '%s\n' "$@" > "$WORK/constraints.txt"
if [ $# -gt 0 ]; then
    "${PIP[@]}" install "$@"
fi
git clone -q "$REPO" "$WORK/skillmimic"
if [ -d "$REPO/../shared" ]; then
    ln -s "$(cd "$REPO/../shared" && pwd)" "$WORK/shared"
fi
"${PIP[@]}" install -c "$WORK/constraints.txt" -e "$WORK/skillmimic[test]"
cd "$WORK/skillmimic"
"$WORK/venv/bin/python" - <<'EOF'
import sys, numpy, torch, mujoco, mujoco_warp, warp
print(f"stack: Python {sys.version.split()[0]} | torch {torch.__version__} | numpy {numpy.__version__} | "
      f"mujoco {mujoco.__version__} | mujoco-warp {getattr(mujoco_warp, '__version__', '?')} | warp {warp.__version__}")
EOF
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider
