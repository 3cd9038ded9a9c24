#!/usr/bin/env bash
# Install the gcvit_mm stack into the current python (or $PYTHON):
#   torch (kept if present, any version 2.0 to 2.14, else torch==2.13.0),
#   mmengine 0.10.7, mmcv 2.1.0 with compiled ops, mmdet 3.3.0,
#   mmsegmentation 1.2.2, pycocotools, ftfy, regex, psutil, pytest, vermin, openmim
#   (without opendatalab), setuptools<81,
#   numpy<2 with torch < 2.3 (built against numpy 1), and gcvit_mm itself
#   (editable). Python 3.8 to 3.12.
#
# Usage:
#   bash tools/install.sh [--wheel-dir DIR]... [--deploy]
#   MMCV_WHEEL_DIR=DIR bash tools/install.sh
#
# --deploy also installs the optional ONNX export extra: onnx 1.23.2,
#   onnxruntime 1.32.0, onnxscript 0.7.2 (torch 2.13's dynamo exporter needs
#   it), the versions tools/deploy/export_onnx.py was checked with; the
#   exporter needs torch >= 2.6 (the script says so and stops on an older one).
#
# mmcv 2.1.0 (with ops) comes from, in order:
#   1. the one already installed, if `mmcv._ext` imports;
#   2. a folder of prebuilt wheels (--wheel-dir DIR / MMCV_WHEEL_DIR), handed to pip
#      as --find-links on the command line: first its subfolder for this torch and
#      python, DIR/torch-<torch version>-py<major.minor> (e.g. torch-2.1.2-py3.11:
#      a wheel's name cannot say which torch it was built for), then DIR itself;
#   3. the wheel cache ($GCVIT_MM_CACHE/wheels/..., default ~/.cache/gcvit_mm);
#   4. a build from the PyPI sdist (10-16 min on 2 cores; C++17, or C++20 for
#      torch >= 2.10, whose headers need it), cached for next time.
#
# Environment: PYTHON (default: python), MMCV_WHEEL_DIR, GCVIT_MM_CACHE,
#   TORCH_SPEC (default: torch==2.13.0, used only when torch is missing),
#   MAX_JOBS (parallel compile jobs for the mmcv build, default: nproc).
# Safe to run again: what is already at the right version is skipped.
set -Eeuo pipefail

TOTAL_STEPS=7
STEP=0
STEP_NAME="start"
T0=$SECONDS
STEP_T0=$SECONDS
TMP_DIR=""

log() { echo "[gcvit_mm install] $*"; }

step() {
    if [ "$STEP" -gt 0 ]; then
        log "  (step $STEP took $((SECONDS - STEP_T0))s)"
    fi
    STEP=$((STEP + 1))
    STEP_NAME="$1"
    STEP_T0=$SECONDS
    log "step $STEP/$TOTAL_STEPS: $STEP_NAME"
}

die() {
    log "FAILED at step $STEP/$TOTAL_STEPS ($STEP_NAME): $*" >&2
    exit 1
}

on_err() {
    local rc=$? line=$1 cmd=$2
    log "FAILED at step $STEP/$TOTAL_STEPS ($STEP_NAME): command '$cmd' (line $line) exited with $rc" >&2
    exit "$rc"
}
trap 'on_err $LINENO "$BASH_COMMAND"' ERR
trap '[ -n "$TMP_DIR" ] && rm -rf "$TMP_DIR"' EXIT

# ---------------------------------------------------------------- arguments
WHEEL_DIRS=()
DEPLOY=0
if [ -n "${MMCV_WHEEL_DIR:-}" ]; then
    WHEEL_DIRS+=("$MMCV_WHEEL_DIR")
fi
for arg in "$@"; do
    if [ "$arg" = --deploy ]; then TOTAL_STEPS=8; fi
done
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel-dir) [ $# -ge 2 ] || die "--wheel-dir needs a folder"; WHEEL_DIRS+=("$2"); shift 2 ;;
        --wheel-dir=*) WHEEL_DIRS+=("${1#*=}"); shift ;;
        --deploy) DEPLOY=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# Absolute paths: the script later runs python from a temporary folder.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
case "$PY" in */*) PY="$(abspath "$PY")" ;; esac
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
CACHE_ROOT="$(abspath "${GCVIT_MM_CACHE:-$HOME/.cache/gcvit_mm}")"
for i in "${!WHEEL_DIRS[@]}"; do WHEEL_DIRS[$i]="$(abspath "${WHEEL_DIRS[$i]}")"; done
MMCV_VERSION=2.1.0
TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gcvit_mm_install.XXXXXX")"
CONSTRAINTS="$TMP_DIR/constraints.txt"
# Run python from an empty folder, so that checks see the installed packages, not
# the source tree (or its gcvit_mm.egg-info) in the current directory.
cd "$TMP_DIR"

# setuptools stays below 81 in every pip call (torch 2.13 alone asks for >= 77 and
# would pull 84, which lacks pkg_resources: mmengine needs it for mmdet::/mmseg::).
echo 'setuptools<81' > "$CONSTRAINTS"

# Never touch PIP_FIND_LINKS: on some machines it already points at a local torch
# wheel, and replacing it would let pip fetch a multi-GB CUDA torch instead.
pip_install() {
    "$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" "$@"
}

# Prints the requirements among "$@" (name==ver, name<ver, or bare name) that are
# not installed at a matching version; prints nothing when all are satisfied.
missing() {
    "$PY" - "$@" <<'PYEOF'
import re, sys
from importlib import metadata
try:
    from packaging.specifiers import SpecifierSet
except ImportError:
    from pip._vendor.packaging.specifiers import SpecifierSet
for req in sys.argv[1:]:
    name, spec = re.match(r'^([A-Za-z0-9_.\-]+)(.*)$', req).groups()
    try:
        ver = metadata.version(name)
    except metadata.PackageNotFoundError:
        print(req)
        continue
    if spec and not SpecifierSet(spec).contains(ver, prereleases=True):
        print(req)
PYEOF
}

# Installs whatever of "$@" is missing, in one pip call.
ensure() {
    local todo
    todo="$(missing "$@")"
    if [ -z "$todo" ]; then
        log "  already installed: $*"
        return 0
    fi
    # shellcheck disable=SC2086
    log "  installing: $(echo $todo)"
    # shellcheck disable=SC2086
    pip_install $todo
}

mmcv_ops_ok() {
    "$PY" -c "from mmcv.ops import nms, roi_align; import mmcv._ext; import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" >/dev/null 2>&1
}

mmcv_ops_error() {
    "$PY" -c "from mmcv.ops import nms, roi_align; import mmcv._ext" 2>&1 | tail -n 1 || true
}

# Tries to install mmcv==2.1.0 from a wheel folder; succeeds only if the ops import.
mmcv_from_dir() {
    local dir="$1"
    [ -d "$dir" ] || { log "  wheel folder $dir does not exist, skipping it"; return 1; }
    if ! ls "$dir"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
        log "  no mmcv-$MMCV_VERSION wheel in $dir"
        return 1
    fi
    log "  installing mmcv==$MMCV_VERSION with --find-links $dir"
    "$PY" -m pip uninstall -y -q mmcv mmcv-lite >/dev/null 2>&1 || true
    if ! pip_install --find-links "$dir" --only-binary mmcv "mmcv==$MMCV_VERSION"; then
        log "  no wheel in $dir fits this python/platform"
        return 1
    fi
    if mmcv_ops_ok; then
        log "  mmcv ops import fine (wheel from $dir)"
        return 0
    fi
    log "  the wheel from $dir installed, but its ops do not load: $(mmcv_ops_error)"
    log "  (a prebuilt mmcv wheel only works with the torch it was built against)"
    "$PY" -m pip uninstall -y -q mmcv >/dev/null 2>&1 || true
    return 1
}

# Builds an mmcv 2.1.0 wheel (CPU ops) from the PyPI sdist into folder $1.
mmcv_build() {
    local out="$1" src="$TMP_DIR/mmcv-src" cxx="${CXX:-c++}"
    command -v "$cxx" >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
        || die "building mmcv needs a C++ compiler (e.g. apt-get install build-essential), or pass --wheel-dir with a prebuilt mmcv-$MMCV_VERSION wheel"
    # mmcv's setup.py imports pkg_resources (setuptools<81) and torch; the build runs
    # without isolation, so its tools must be in this python.
    ensure "setuptools<81" wheel ninja
    mkdir -p "$src" "$out"
    log "  downloading the mmcv $MMCV_VERSION sdist"
    "$PY" -m pip download --disable-pip-version-check -c "$CONSTRAINTS" --no-deps \
        --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$src"
    tar -xzf "$src"/mmcv-"$MMCV_VERSION".tar.gz -C "$src"
    local tree="$src/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers need C++20; older torch builds as mmcv ships (C++17).
    if "$PY" -c "import sys; sys.exit(tuple(int(p) for p in '$TORCH_BASE'.split('.')[:2]) < (2, 10))"; then
        sed -i 's/-std=c++17/-std=c++20/g' "$tree/setup.py"
    fi
    local jobs="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"
    log "  compiling mmcv $MMCV_VERSION ops (CPU, MAX_JOBS=$jobs): this takes about 10 minutes on 2 cores"
    (cd "$tree" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$jobs" \
        "$PY" -m pip wheel --disable-pip-version-check -c "$CONSTRAINTS" \
        --no-build-isolation --no-deps -w "$out" .)
    log "  built wheel cached in $out"
}

# ---------------------------------------------------------------- 1. python
step "python and pip"
command -v "$PY" >/dev/null 2>&1 || die "python '$PY' not found (set PYTHON=/path/to/python)"
"$PY" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 12))' \
    || die "gcvit_mm supports Python 3.8 to 3.12, $PY is $("$PY" -V 2>&1): use one of those (PYTHON=/path/to/python3.11)"
"$PY" -m pip --version >/dev/null 2>&1 || die "pip is not available in $PY (try: $PY -m ensurepip)"
log "  python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

# ---------------------------------------------------------------- 2. torch
step "torch (kept if already installed)"
if "$PY" -c "import torch" >/dev/null 2>&1; then
    log "  keeping the installed torch"
else
    log "  no importable torch: installing $TORCH_SPEC"
    pip_install "$TORCH_SPEC"
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')" \
    || die "torch does not import after installation"
log "  torch $TORCH_VERSION"
# 2.0 brought scaled_dot_product_attention; 2.14 is the newest tested.
TORCH_BASE="${TORCH_VERSION%%+*}"
"$PY" -c "import sys; v = tuple(int(p) for p in '$TORCH_BASE'.split('.')[:2]); sys.exit(not (2, 0) <= v <= (2, 14))" \
    || die "gcvit_mm supports torch 2.0 to 2.14, this python has torch $TORCH_VERSION: install one of those first (e.g. pip install torch==2.1.2) or into a fresh venv with TORCH_SPEC=torch==2.1.2"
# From here on pip may not change torch.
echo "torch==$TORCH_VERSION" >> "$CONSTRAINTS"
# torch before 2.3 is built against numpy 1: numpy 2 breaks its numpy interop
# (torch.from_numpy, DataLoader collation of numpy values).
if "$PY" -c "import sys; sys.exit(tuple(int(p) for p in '$TORCH_BASE'.split('.')[:2]) >= (2, 3))"; then
    log "  torch < 2.3: numpy stays below 2"
    echo 'numpy<2' >> "$CONSTRAINTS"
    ensure 'numpy<2'
fi

# ---------------------------------------------------------------- 3. mmengine
step "mmengine 0.10.7"
ensure "mmengine==0.10.7"

# ---------------------------------------------------------------- 4. mmcv
step "mmcv $MMCV_VERSION with compiled ops"
CACHE_DIR="$CACHE_ROOT/wheels/$PY_TAG-torch$TORCH_VERSION"
if mmcv_ops_ok; then
    log "  mmcv $MMCV_VERSION with ops already installed"
else
    if "$PY" -c "import importlib.metadata as m; m.version('mmcv')" >/dev/null 2>&1; then
        log "  the installed mmcv is not $MMCV_VERSION with working ops: $(mmcv_ops_error)"
    fi
    done_mmcv=0
    # Each wheel folder's subfolder for this torch and python first.
    PY_DOT="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    CANDIDATES=()
    for dir in ${WHEEL_DIRS[@]+"${WHEEL_DIRS[@]}"}; do
        if [ -d "$dir/torch-$TORCH_BASE-py$PY_DOT" ]; then
            CANDIDATES+=("$dir/torch-$TORCH_BASE-py$PY_DOT")
        fi
        CANDIDATES+=("$dir")
    done
    for dir in ${CANDIDATES[@]+"${CANDIDATES[@]}"} "$CACHE_DIR"; do
        if mmcv_from_dir "$dir"; then done_mmcv=1; break; fi
    done
    if [ "$done_mmcv" = 0 ]; then
        log "  no usable prebuilt mmcv wheel: building it from source"
        mmcv_build "$CACHE_DIR"
        mmcv_from_dir "$CACHE_DIR" || die "the freshly built mmcv wheel does not work: $(mmcv_ops_error)"
    fi
fi
printf 'mmcv==%s\nmmengine==0.10.7\n' "$MMCV_VERSION" >> "$CONSTRAINTS"

# ---------------------------------------------------------------- 5. mmdet, mmseg, extras
step "mmdet 3.3.0, mmsegmentation 1.2.2, pycocotools, ftfy, regex, psutil, pytest, vermin, openmim"
ensure "mmdet==3.3.0" "mmsegmentation==1.2.2" pycocotools ftfy regex psutil pytest vermin
# openmim (`mim train gcvit_mm`) without its declared dependency opendatalab,
# which pulls openxlab and its pins (setuptools 60.2, older requests, rich,
# tqdm): mim runs with the packages it imports (pip says opendatalab is
# missing; only mim's dataset download needs it).
ensure click colorama model-index pandas requests rich tabulate
if [ -n "$(missing openmim)" ]; then
    log "  installing: openmim (--no-deps)"
    pip_install --no-deps openmim
fi

# ---------------------------------------------------------------- 6. gcvit_mm
step "gcvit_mm (editable, from $REPO_DIR)"
if "$PY" - "$REPO_DIR" <<'PYEOF' >/dev/null 2>&1
import os, sys
from importlib import metadata
from importlib.util import find_spec
metadata.distribution('gcvit_mm')
spec = find_spec('gcvit_mm')
locs = list(spec.submodule_search_locations or [])
want = os.path.realpath(os.path.join(sys.argv[1], 'gcvit_mm'))
sys.exit(0 if any(os.path.realpath(p) == want for p in locs) else 1)
PYEOF
then
    log "  gcvit_mm already installed in editable mode from $REPO_DIR"
else
    ensure "setuptools<81" wheel
    pip_install --no-deps --no-build-isolation -e "$REPO_DIR"
fi

# ---------------------------------------------------------------- 7. deploy extra
if [ "$DEPLOY" = 1 ]; then
    step "deploy extra: onnx, onnxruntime, onnxscript"
    # tools/deploy needs a newer torch than the rest: say which, install nothing.
    reason="$("$PY" -c 'from gcvit_mm.deploy import exporter_unavailable; print(exporter_unavailable() or "")')" \
        || die "cannot import gcvit_mm.deploy (see the traceback above)"
    [ -z "$reason" ] || die "--deploy: $reason; the rest of the stack is installed, run again without --deploy"
    ensure "onnx==1.23.2" "onnxruntime==1.32.0" "onnxscript==0.7.2"
    "$PY" -c "import onnx, onnxruntime, onnxscript" \
        || die "the deploy extra does not import (see the traceback above)"
fi

# ---------------------------------------------------------------- 8. checks
step "setuptools < 81 and final import check"
ensure "setuptools<81"
"$PY" - <<'PYEOF' || die "setuptools must be < 81 and provide pkg_resources (mmengine needs it for mmdet::/mmseg:: configs)"
import sys
from importlib import metadata
import warnings
warnings.simplefilter('ignore')
import pkg_resources  # noqa: F401
ver = metadata.version('setuptools')
sys.exit(int(ver.split('.')[0]) >= 81)
PYEOF
"$PY" - <<'PYEOF' || die "the final import check failed (see the traceback above)"
import warnings
warnings.simplefilter('ignore')
from importlib import metadata
import torch
import mmengine
import mmcv
from mmcv.ops import nms, roi_align  # noqa: F401
import mmcv._ext  # noqa: F401
import mmdet
import mmseg
import gcvit_mm.version
import gcvit_mm  # noqa: F401
print('[gcvit_mm install]   torch', torch.__version__, '| mmengine', mmengine.__version__,
      '| mmcv', mmcv.__version__, '(ops ok) | mmdet', mmdet.__version__,
      '| mmseg', mmseg.__version__, '| setuptools', metadata.version('setuptools'),
      '| gcvit_mm', gcvit_mm.version.__version__)
PYEOF
log "  (step $STEP took $((SECONDS - STEP_T0))s)"
log "done in $((SECONDS - T0))s"
