#!/usr/bin/env bash
# GPU checks and benchmarks of proxcompress.kernels in one call (about 40 s on an H200 once the
# machine is up).
#
#   bash benchmarks/gpu.sh OUTDIR
#
# Writes into OUTDIR: nvidia-smi.txt, pytest-gpu.log (pytest -m gpu over tests/kernels and tests/training: the kernels
# and GPU inference of exported models), kernels-gpu.json and bench-gpu.log
# (benchmarks/kernels.py gpu). Needs python3 with CuPy, PyTorch, NumPy, safetensors, PyYAML,
# pytest and hypothesis (no solvers); nothing is installed: the package is made importable from
# a throwaway folder that maps proxcompress.<wing> to each wing's folder as pyproject does.
# Exit status: non-zero if the GPU tests or the benchmark failed (both always run).
set -u -o pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
mkdir "$site/proxcompress"
cp "$repo"/proxcompress/*.py "$site/proxcompress/"
for wing in formulations proofs training kernels causal; do
  ln -s "$repo/$wing" "$site/proxcompress/$wing"
done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
py=${PYTHON:-python3}

{ nvidia-smi; nvcc --version; "$py" -c 'import cupy, torch; print("cupy", cupy.__version__, "torch", torch.__version__)'; } \
  >"$out/nvidia-smi.txt" 2>&1

# run from $site so that the repository root (whose proxcompress/ lacks the wing mapping) is not
# first on sys.path
cd "$site" || exit 1
timeout 200 "$py" -m pytest -m gpu "$repo/tests/kernels" "$repo/tests/training" -q -p no:cacheprovider --tb=short \
  2>&1 | tee "$out/pytest-gpu.log"
tests=$?
timeout 240 "$py" "$repo/benchmarks/kernels.py" gpu --out "$out/kernels-gpu.json" \
  >"$out/bench-gpu.log" 2>"$out/bench-gpu.err"
bench=$?
tail -n 40 "$out/bench-gpu.err"
echo "gpu.sh: tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
