#!/usr/bin/env bash
# Re-run the tutorials and store their outputs, in the environment nbval validates them in.
#
#   notebooks/regenerate.sh                        # every notebook
#   notebooks/regenerate.sh notebooks/03-*.ipynb   # some of them
#
# Same environment as the test suite (tests/conftest.py, notebooks/conftest.py): the embedded
# emulator (MI_NOTEBOOK_MODE=emulator, no MI_NOTEBOOK_IMDS_URL, no proxies) and the loopback guard
# (tests/_guard on PYTHONPATH) in every kernel; the kernel is this Python's (the one pytest uses).
# MPLBACKEND stays unset so figures are stored in the notebooks. Never edit outputs by hand.
# Afterwards: python -m pytest notebooks   (strict nbval; run it twice to see the outputs are stable)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
PYTHON="${PYTHON:-python}"

export MI_NOTEBOOK_MODE=emulator
unset MI_NOTEBOOK_IMDS_URL MPLBACKEND HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
export MI_NOTEBOOK_LOOPBACK_GUARD=1
guard_log="$(mktemp -d)/violations.log"
export MI_NOTEBOOK_GUARD_LOG="$guard_log"
export PYTHONPATH="$repo/tests/_guard${PYTHONPATH:+:$PYTHONPATH}"
export NODE_OPTIONS="--require \"$repo/tests/_guard/loopback_guard.js\"${NODE_OPTIONS:+ $NODE_OPTIONS}"  # Azurite (notebook 09)

if [ "$#" -eq 0 ]; then
    set -- notebooks/[0-9]*.ipynb
fi
# ipykernel's own kernel spec for this interpreter, whatever kernels are installed elsewhere
"$PYTHON" -m jupyter nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=120 "$@"

if [ -s "$guard_log" ]; then
    echo "non-loopback traffic attempted while executing the notebooks:" >&2
    cat "$guard_log" >&2
    exit 1
fi
