#!/usr/bin/env bash
# Throw-away virtual environments for the peer benchmarks (benchmarks/peers/run.py), outside the repository:
#   torchgfn/  torchgfn 2.4.1, on the torch of the interpreter that runs thermogfn (system site packages), so
#              both sides use the same torch build; its numpy<2 pin gets a venv-local numpy 1.26
#   gfnx/      gfnx 0.0.1 (pins numpy 1.26.4) + jax/jaxlib 0.6.2 (CPU) + equinox and optax for the policy
# Idempotent: an environment whose packages are already at these versions is left alone.
# Folder: $THERMOGFN_PEERS_DIR, default ~/.cache/thermogfn-peers. Interpreter: $PYTHON, default python3.
set -euo pipefail

PEERS_DIR="${THERMOGFN_PEERS_DIR:-$HOME/.cache/thermogfn-peers}"
PYTHON="${PYTHON:-python3}"
TORCHGFN_REQ=(torchgfn==2.4.1)
GFNX_REQ=(gfnx==0.0.1 jax==0.6.2 jaxlib==0.6.2 numpy==1.26.4 equinox optax)

mkdir -p "$PEERS_DIR"

has_versions() {  # has_versions VENV NAME==VER ... : every package installed at that version
    "$1/bin/python" - "${@:2}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version

for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want:
        sys.exit(1)
EOF
}

make_venv() {  # make_venv VENV [venv options]: create it unless it works already
    if [ ! -x "$1/bin/python" ]; then
        echo "creating $1"
        "$PYTHON" -m venv "${@:2}" "$1"
        "$1/bin/python" -m pip install -q --upgrade pip
    fi
}

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch; run with the interpreter of thermogfn's environment (PYTHON=...)" >&2
    exit 1
fi

TG="$PEERS_DIR/torchgfn"
make_venv "$TG" --system-site-packages
if has_versions "$TG" "${TORCHGFN_REQ[@]}"; then
    echo "torchgfn: up to date"
else
    "$TG/bin/python" -m pip install -q "${TORCHGFN_REQ[@]}"
fi

GX="$PEERS_DIR/gfnx"
make_venv "$GX"
if has_versions "$GX" "${GFNX_REQ[@]}"; then
    echo "gfnx: up to date"
else
    "$GX/bin/python" -m pip install -q "${GFNX_REQ[@]}"
fi

echo "torchgfn venv: $TG ($("$TG/bin/python" -c 'import gfn, torch; print("torchgfn", gfn.__version__, "torch", torch.__version__)'))"
echo "gfnx venv:     $GX ($("$GX/bin/python" -c 'import importlib.metadata as m; print("gfnx", m.version("gfnx"), "jax", m.version("jax"))'))"
echo "peers folder:  $PEERS_DIR"
