#!/usr/bin/env bash
# Prepares the GPU scripts for a GPU machine without network access or
# without keras. Run it on a machine with internet access: it downloads the
# wheels of keras and of the two packages keras needs beyond a JAX or
# PyTorch installation (namex, optree) into .whl/, for the GPU machine's Python
# (GPU_PYTHON_VERSION, default 3.12, x86-64 Linux), and copies the CIFAR-10
# JPEG archive into .gpu_data/ (about 22 MiB in all; both folders are
# git-ignored). Then copy the repository with these two folders to the GPU
# machine and run `bash benchmarks/gpu_check.sh` there. See docs/gpu.md.
#
#   bash benchmarks/gpu_prepare.sh
#   CIFAR10_ARCHIVE=/data/cifar10-jpeg.tar.gz bash benchmarks/gpu_prepare.sh
#
# The GPU machine is expected to have jax (CUDA) and/or torch, numpy,
# absl-py, rich, h5py, ml-dtypes, packaging, pillow and matplotlib; it needs
# no TensorFlow. Where it has network access and keras, skip this script
# and run the GPU scripts with GPU_SKIP_INSTALL=1 and GPU_DATA=<folder with
# cifar10-jpeg.tar.gz>.
set -euo pipefail
cd "$(dirname "$0")/.."

KERAS_VERSION="${KERAS_VERSION:-3.15.1}"
NAMEX_VERSION="${NAMEX_VERSION:-0.1.0}"
OPTREE_VERSION="${OPTREE_VERSION:-0.20.0}"
PYTHON_VERSION="${GPU_PYTHON_VERSION:-3.12}"
# Default: next to the repository, where the README's quickstart reads it.
ARCHIVE="${CIFAR10_ARCHIVE:-$(dirname "$PWD")/shared/data/cifar10-jpeg.tar.gz}"

rm -rf .whl
mkdir -p .whl .gpu_data
python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version "${PYTHON_VERSION}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl \
  "keras==${KERAS_VERSION}" "namex==${NAMEX_VERSION}" \
  "optree==${OPTREE_VERSION}"

# keras' own requirements, to compare with what the GPU machine has.
unzip -p .whl/keras-*.whl '*/METADATA' | grep '^Requires-Dist' || true

if [[ ! -f "${ARCHIVE}" ]]; then
  echo "CIFAR-10 archive not found at ${ARCHIVE}; set CIFAR10_ARCHIVE." >&2
  exit 1
fi
cp -f "${ARCHIVE}" .gpu_data/
du -sh .whl .gpu_data
echo "Ready: copy the repository with .whl/ and .gpu_data/ to the GPU" \
  "machine and run 'bash benchmarks/gpu_check.sh' there."
