#!/usr/bin/env bash
# Install LLaMA-Factory 0.9.5 into its own venv (bench/.venvs/lf), CPU-only torch, idempotently.
#
#   bash bench/preprocess/install_lf.sh        # prints each step; does nothing if already installed
#
# Why the extra steps after `pip install`:
#   * torch is pinned (constraints-lf.txt) to 2.13.0, the CPU build pip finds in the local wheel
#     folder; unpinned, pip would pull a multi-GB CUDA build.
#   * llamafactory 0.9.5 requires torchvision and torchaudio. PyPI only has their CUDA builds, whose
#     compiled extensions do not load next to torch+cpu:
#       - a broken torchvision breaks `import transformers` paths (transformers imports it whenever it
#         is installed), so it is uninstalled: nothing in LLaMA-Factory's text pipeline needs it and
#         transformers then simply treats it as absent;
#       - llamafactory/data/mm_plugin.py does `import torchaudio` at module level (audio loading,
#         unused for text datasets), so torchaudio must stay importable. Its compiled `.so` files are
#         moved into `<site-packages>/torchaudio-disabled-so/`; torchaudio's extension loader then
#         treats it as built without extensions and imports cleanly.
#     Both fixes only run when the import actually fails, so a future matching CPU wheel is left alone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
VENV="${LF_VENV:-$BENCH/.venvs/lf}"
PY_FOR_VENV="${PYTHON311:-python3.11}"   # llamafactory 0.9.5 requires Python >= 3.11
LF_VERSION=0.9.5
PY="$VENV/bin/python"

say() { echo "[install-lf] $*"; }
# pip, minus the warnings this machine's pip config prints for every package (local index folders
# that hold only some packages); pip's own exit status is kept.
pip_q() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

lf_ok() {
    [ -x "$PY" ] && "$PY" - "$LF_VERSION" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as md
assert md.version("llamafactory") == sys.argv[1]
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer  # noqa: F401
from llamafactory.hparams import get_train_args  # noqa: F401
EOF
}

if lf_ok; then
    say "llamafactory $LF_VERSION already installed and importable in $VENV; skipping"
    exit 0
fi

if [ ! -x "$PY" ]; then
    say "creating venv $VENV with $PY_FOR_VENV"
    "$PY_FOR_VENV" -m venv "$VENV"
fi

say "pip install torch==2.13.0 (CPU wheel, found offline)"
pip_q install -q torch==2.13.0
say "pip install llamafactory==$LF_VERSION -c $(basename "$HERE")/constraints-lf.txt"
pip_q install -q "llamafactory==$LF_VERSION" -c "$HERE/constraints-lf.txt"

if "$PY" -m pip show -q torchvision >/dev/null 2>&1 && ! "$PY" -c "import torchvision" >/dev/null 2>&1; then
    say "torchvision is installed but does not import next to torch+cpu -> pip uninstall torchvision"
    pip_q uninstall -y -q torchvision
fi

if ! "$PY" -c "import torchaudio" >/dev/null 2>&1; then
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    PARK="$SITE/torchaudio-disabled-so"
    say "torchaudio does not import next to torch+cpu -> moving its compiled .so files to $PARK"
    mkdir -p "$PARK"
    find "$SITE/torchaudio" -name '*.so' -print0 | while IFS= read -r -d '' so; do
        rel="${so#"$SITE/torchaudio/"}"
        mkdir -p "$PARK/$(dirname "$rel")"
        mv "$so" "$PARK/$rel"
        say "  moved torchaudio/$rel"
    done
    "$PY" -c "import torchaudio" || { say "torchaudio still does not import"; exit 1; }
fi

if lf_ok; then
    say "llamafactory $("$PY" -c 'import importlib.metadata as m; print(m.version("llamafactory"))') ready in $VENV"
else
    say "llamafactory does not import; the error:"
    "$PY" -c "from llamafactory.data import get_dataset" || true
    exit 1
fi
