#!/usr/bin/env bash
# The GPU check: runs ON the GPU machine (JAX CUDA + PyTorch, no TensorFlow,
# no keras), from the repository root, after benchmarks/gpu_prepare.sh ran
# here and the device tool carried `.whl` and `.gpu_data`. See docs/gpu.md.
#
#   bash benchmarks/gpu_check.sh                  # the full check, <= 10 min
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh # CPU smoke test (~1 min)
#
# 1. installs the carried wheels (keras, namex, optree) into /tmp/site;
# 2. blocks `import tensorflow` (a stub package first on PYTHONPATH), so the
#    whole check proves the TensorFlow-free path;
# 3. trains CIFAR-10-LT IR100 BalPoE + Mixup with the reference recipe
#    (benchmarks/train_arrays.py) and prints the test report;
# 4. prints the input-path and model throughput tables
#    (benchmarks/arrays_throughput.py, benchmarks/throughput.py).
#
# Outputs in $OUT (default ./gpu_out): gpu_check.log, train_log.csv,
# report.md, report.json, reliability.png, throughput_b<B>.json.
#
# Environment knobs:
#   GPU_CHECK_TINY=1        1 epoch on 512 images, small model, JAX on CPU
#                           is fine; skips the model throughput table.
#   GPU_CHECK_TRAIN_ARGS    extra train_arrays.py flags; the documented
#                           fallback if 200 epochs do not fit:
#                           "--epochs 100" or "--batch_size 512".
#   GPU_CHECK_BACKEND       Keras backend for training (default jax).
#   GPU_CHECK_CONFIGS       throughput configs (default jax,jax_bf16,torch).
#   GPU_CHECK_BATCHES       throughput batch sizes (default "128 512").
#   GPU_CHECK_TRAIN_TIMEOUT seconds for training (default 340). The whole
#                           default check is budgeted to end within 600 s
#                           (one device call): training 340 s, input path
#                           60 s, each throughput table 90 s.
#   GPU_CHECK_TP_TIMEOUT    seconds per throughput table (default 90).
#   GPU_CHECK_SKIP_INSTALL=1  use the keras already importable.
#   GPU_CHECK_SKIP_THROUGHPUT=1, GPU_CHECK_SKIP_TRAIN=1
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-${ROOT}/gpu_out}"
mkdir -p "${OUT}"
LOG="${OUT}/gpu_check.log"
TINY="${GPU_CHECK_TINY:-0}"
WORK="${GPU_CHECK_WORKDIR:-$(mktemp -d /tmp/balpoe_gpu_check.XXXXXX)}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
# Keras defaults to the TensorFlow backend; throughput.py sets its own.
export KERAS_BACKEND="${GPU_CHECK_BACKEND:-jax}"

exec > >(tee -a "${LOG}") 2>&1
echo "== balpoe_keras GPU check $(date -u +%FT%TZ) tiny=${TINY} work=${WORK}"

# --- 1. carried wheels ------------------------------------------------------
SITE=""
if [[ "${GPU_CHECK_SKIP_INSTALL:-${TINY}}" != 1 ]]; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "No wheels in .whl/: run benchmarks/gpu_prepare.sh on the CPU" \
      "machine and carry .whl and .gpu_data." >&2
    exit 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  SITE="/tmp/site:"
fi

# --- 2. block TensorFlow ----------------------------------------------------
STUB="${WORK}/no_tensorflow"
mkdir -p "${STUB}/tensorflow"
echo 'raise ImportError("TensorFlow is blocked by gpu_check.sh")' \
  > "${STUB}/tensorflow/__init__.py"
export PYTHONPATH="${STUB}:${SITE}${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"

python3 - <<'PY' || exit 1
import sys, platform
try:
    import tensorflow  # noqa: F401
    sys.exit("TensorFlow is importable: the stub did not take effect")
except ImportError as e:
    print(f"tensorflow: not importable ({e})")
import keras, numpy
print(f"python {platform.python_version()}, keras {keras.__version__}, "
      f"numpy {numpy.__version__}")
for name in ("jax", "torch"):
    try:
        mod = __import__(name)
        devices = (mod.devices() if name == "jax" else
                   [mod.cuda.get_device_name(0)] if mod.cuda.is_available()
                   else ["cpu"])
        print(f"{name} {mod.__version__}: {devices}")
    except Exception as e:  # report and go on
        print(f"{name}: unavailable ({type(e).__name__}: {e})")
PY
command -v nvidia-smi >/dev/null && nvidia-smi -L

DATA=".gpu_data"
[[ -f "${DATA}/cifar10-jpeg.tar.gz" ]] || DATA=""
TIMEOUT="${GPU_CHECK_TRAIN_TIMEOUT:-340}"
status=0

# --- 3. training + report ---------------------------------------------------
if [[ "${GPU_CHECK_SKIP_TRAIN:-0}" != 1 ]]; then
  echo "== CIFAR-10-LT IR100 BalPoE + Mixup (benchmarks/train_arrays.py)"
  # A fresh work folder starts from scratch; a reused GPU_CHECK_WORKDIR
  # (same warm machine) resumes from its last checkpoint.
  args=(--out "${WORK}/train")
  [[ -n "${DATA}" ]] && args+=(--data "${DATA}")
  [[ "${TINY}" == 1 ]] && args+=(--tiny)
  # shellcheck disable=SC2206
  args+=(${GPU_CHECK_TRAIN_ARGS:-})
  BALPOE_KERAS_CACHE="${BALPOE_KERAS_CACHE:-${WORK}/cache}" \
    timeout "${TIMEOUT}" python3 benchmarks/train_arrays.py "${args[@]}"
  rc=$?
  if (( rc != 0 )); then
    echo "train_arrays.py failed or timed out (exit ${rc}); see above."
    status=1
  fi
  for f in train/train_log.csv train/report/report.md \
           train/report/report.json train/report/reliability.png; do
    [[ -f "${WORK}/${f}" ]] && cp "${WORK}/${f}" "${OUT}/"
  done
fi

# --- 4. throughput tables ---------------------------------------------------
if [[ "${GPU_CHECK_SKIP_THROUGHPUT:-${TINY}}" != 1 ]]; then
  echo "== input path throughput (benchmarks/arrays_throughput.py)"
  KERAS_BACKEND=jax timeout 60 python3 benchmarks/arrays_throughput.py \
    --repeats 2 || status=1
  for batch in ${GPU_CHECK_BATCHES:-128 512}; do
    echo "== model throughput, batch ${batch} (benchmarks/throughput.py)"
    timeout "${GPU_CHECK_TP_TIMEOUT:-90}" python3 benchmarks/throughput.py \
      --configs "${GPU_CHECK_CONFIGS:-jax,jax_bf16,torch}" \
      --batch_size "${batch}" --steps 10 --repeats 2 \
      --out "${OUT}/throughput_b${batch}.json" || status=1
  done
fi

echo "== done (status ${status}); outputs in ${OUT}: $(ls "${OUT}" | xargs)"
exit "${status}"
