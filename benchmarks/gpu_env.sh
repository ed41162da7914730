# Sourced by the GPU scripts (benchmarks/gpu_check.sh,
# reproduction/gpu_reproduce.sh) on the GPU machine, from the repository
# root, with WORK (a scratch folder) and GPU_OUT (the output folder) set by
# the caller. See docs/gpu.md.
#
# 1. installs the wheels of .whl/ (keras, namex, optree; written by
#    benchmarks/gpu_prepare.sh) into /tmp/site, unless GPU_SKIP_INSTALL=1
#    (use the keras already importable);
# 2. blocks `import tensorflow` (a stub package first on PYTHONPATH), so
#    every run proves the TensorFlow-free path, also where TensorFlow is
#    installed;
# 3. prints python/keras/jax/torch versions and devices;
# 4. sets DATA to the folder of cifar10-jpeg.tar.gz: GPU_DATA, else
#    .gpu_data/ (written by gpu_prepare.sh), else empty (the runner then
#    looks in its usual places).

ROOT="$PWD"
GPU_OUT="${GPU_OUT:-${ROOT}/gpu_out}"
mkdir -p "${GPU_OUT}" "${WORK}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
# Keras' default backend, TensorFlow, is blocked below.
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
# Several processes may share the GPU: no JAX up-front allocation of 75 %.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

SITE=""
if [[ "${GPU_SKIP_INSTALL:-0}" != 1 ]]; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "No wheels in .whl/: run benchmarks/gpu_prepare.sh on a machine" \
      "with internet access and copy .whl/ here, or set" \
      "GPU_SKIP_INSTALL=1 to use the installed keras." >&2
    exit 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  SITE="/tmp/site:"
fi

STUB="${WORK}/no_tensorflow"
mkdir -p "${STUB}/tensorflow"
echo 'raise ImportError("TensorFlow is blocked by benchmarks/gpu_env.sh")' \
  > "${STUB}/tensorflow/__init__.py"
export PYTHONPATH="${STUB}:${SITE}${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
# balpoe_keras then treats TensorFlow as absent even where one is installed.
export BALPOE_KERAS_NO_TENSORFLOW=1

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

DATA="${GPU_DATA:-${ROOT}/.gpu_data}"
[[ -f "${DATA}/cifar10-jpeg.tar.gz" ]] || DATA=""
