#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: a virtual environment in .venv with graphc installed
# (editable, with the dev and notebook extras), and Graphviz's `dot` from Debian's packages if
# it is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.graphc-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root[dev,notebook]"  # notebook: its test
  touch "$stamp"
fi

# The numba backend (the numba extra), so its tests run rather than skip
if [ "${GRAPHC_WANT_NUMBA:-0}" = 1 ] && ! "$venv/bin/python" -c "import numba" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet -e "$root[dev,notebook,numba]"
fi

# The array API backend's libraries (the arrays extra: array-api-compat, array-api-strict,
# Dask with its distributed scheduler), so its tests run rather than skip
if [ "${GRAPHC_WANT_ARRAYS:-0}" = 1 ] && ! "$venv/bin/python" -c \
  "import array_api_compat, array_api_strict, dask.array, distributed" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet -e "$root[dev,arrays]"
fi

# The tests' third oracle, PyTorch (the test-torch extra), only where a CPU wheel is at hand
# locally: from a package index, torch would bring gigabytes of CUDA libraries.
if [ "${GRAPHC_WANT_TORCH:-0}" = 1 ] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  wheels=$(mktemp -d)
  if "$venv/bin/python" -m pip download --quiet --no-index --no-deps -d "$wheels" \
    "torch==2.13.0" >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet "$wheels"/torch-*.whl || true
  else
    echo "graphc: no local PyTorch 2.13.0 CPU wheel; the PyTorch oracle tests will be skipped" >&2
  fi
  rm -rf "$wheels"
fi

# System programs: Graphviz's dot draws the circuits; rsvg-convert (librsvg2-bin) lets the tests
# rasterise a drawing as a person's SVG viewer would; chromium (GRAPHC_NEED_CHROMIUM=1) opens the
# explorer's pages in a real browser, headless.
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
[ "${GRAPHC_NEED_RSVG:-0}" = 1 ] && ! command -v rsvg-convert >/dev/null 2>&1 && missing+=(librsvg2-bin)
[ "${GRAPHC_NEED_CHROMIUM:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1 && missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "graphc: installing ${missing[*]} from Debian's packages" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "graphc: please install ${missing[*]} (apt-get install ${missing[*]})" >&2
  fi
fi
