#!/usr/bin/env bash
# One GPU session for issue 17: the CUDA tests, the whole suite in parallel, and the GPU bench.
#
#   OUT=/some/empty/dir bash benchmarks/gpu_session.sh
#
# Needs: a CUDA GPU; torch, torchvision, scikit-image, pytest, pytest-xdist; and streamlit,
# plotly, captum, mlxtend (installed from wheels beforehand where the machine has no index).
# Writes at most 8 files under $OUT, one folder deep:
#   session.log            every step's progress with timestamps (this script's own output)
#   cuda-tests.log         python -m pytest -m cuda (every CUDA check of issue 17)
#   suite.log              the whole suite but browser and CUDA tests, -n workers, threads each
#   gpu/bench-resnet50-cuda-b{1,16}[-tf32].json    the bench, one JSON per batch and precision
#   gpu/gpu.md             the GPU table generated from those JSON (docs/gpu.md content)
# The JSON also land in benchmarks/results/gpu/ of this checkout. Order: (a) the CUDA tests, (c) the
# bench and its table, (b) the suite with what is left of BUDGET seconds (default 570).
set -u
export PYTHONUNBUFFERED=1 EXPLORER_OFFLINE=1
OUT=${OUT:?set OUT to a folder for the results}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$OUT/gpu" benchmarks/results/gpu
WORK=$(mktemp -d)
ROUNDS=${ROUNDS:-3}                 # interleaved rounds per bench run (each row: median, IQR)
SUITE_TIMEOUT=${SUITE_TIMEOUT:-280}  # at most, for the parallel suite (issue 17: under 5 minutes)
BUDGET=${BUDGET:-570}                # the whole session, seconds (the device tool's limit is 600)
DEADLINE=$(( $(date +%s) + BUDGET ))
# Overridable for a CPU smoke test of this script (the defaults are the GPU session's):
BENCH_ARGS=${BENCH_ARGS:---model resnet50 --random-weights --size 224 --device cuda}
SUITE_TESTS=${SUITE_TESTS:-tests}
CORES=$(nproc)
WORKERS=${WORKERS:-$(( CORES > 2 ? CORES - 2 : 1 ))}

say() { echo "[$(date -u +%H:%M:%S)] $*"; }

bench() {  # batch precision
    local b=$1 p=$2 tag=b$1
    [ "$p" != float32 ] && tag="$tag-$p"
    say "(c) bench batch $b, $p"
    # shellcheck disable=SC2086
    timeout "${BENCH_TIMEOUT:-100}" python -m explorer bench $BENCH_ARGS --batch "$b" --rounds "$ROUNDS" --precision "$p" \
        --sections methods,captum,mfaba --out "$WORK/$tag" > "$WORK/$tag.log" 2>&1
    say "(c) exit $? batch $b $p"
    grep -E "Captum/ours|images/s|limit\)" "$WORK/$tag.log" | head -n 14
    local json
    json=$(ls "$WORK/$tag"/bench-*.json 2>/dev/null | head -n 1)
    if [ -n "$json" ]; then
        local name
        name=$(basename "$json" .json | sed "s/-$p\$//")-$tag.json
        cp "$json" "benchmarks/results/gpu/$name"
        cp "$json" "$OUT/gpu/$name"
    else
        tail -n 20 "$WORK/$tag.log"
    fi
}
main() {
say "start on $(hostname), $CORES cores, $WORKERS pytest workers"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
python - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("torchvision", "skimage", "pytest", "xdist", "streamlit", "plotly", "captum", "mlxtend"):
    try:
        m = importlib.import_module(name)
        print(f"  {name} {getattr(m, '__version__', '?')}")
    except ImportError as err:
        print(f"  MISSING {name}: {err}")
EOF

say "(a) CUDA tests: python -m pytest -m cuda"
timeout "${CUDA_TIMEOUT:-150}" python -m pytest -m cuda -q -rA -p no:cacheprovider tests/test_cuda.py \
    > "$OUT/cuda-tests.log" 2>&1
say "(a) exit $? : $(tail -n 1 "$OUT/cuda-tests.log")"

for b in 1 16; do
    for p in float32 tf32; do
        bench "$b" "$p"
    done
done

say "(c) GPU table"
python -m benchmarks.gpu_table benchmarks/results/gpu --out "$OUT/gpu/gpu.md"
cp "$OUT/gpu/gpu.md" docs/gpu.md 2>/dev/null || true
# The suite goes last and gets what is left of the session's budget (the bench and the table are
# safe under $OUT by then, whatever happens to the suite).
left=$(( DEADLINE - $(date +%s) ))
[ "$left" -gt "$SUITE_TIMEOUT" ] && left=$SUITE_TIMEOUT
[ "$left" -lt 30 ] && left=30
say "(b) suite: -n $WORKERS, not cuda, no browser tests, timeout ${left}s"
start=$(date +%s)
# -v: each finished test is a line, so a run cut by the timeout still shows how far it came
timeout "$left" python -m pytest -n "$WORKERS" -m "not cuda" --ignore=tests/e2e -v \
    -p no:cacheprovider --durations=15 $SUITE_TESTS > "$OUT/suite.log" 2>&1
code=$?
say "(b) exit $code after $(( $(date +%s) - start ))s (124: timed out): $(tail -n 1 "$OUT/suite.log")"

say "done; files under $OUT:"
find "$OUT" -type f | sort
}

main 2>&1 | tee "$OUT/session.log"
rm -rf "$WORK"
