#!/usr/bin/env bash
# Prepares the GPU check HERE, on the CPU machine (it has PyPI; the GPU
# machine has no network): downloads the wheels that the GPU image lacks into
# .whl/ and copies the CIFAR-10 JPEG archive into .gpu_data/. Both folders
# are git-ignored; the device tool carries them (`carry: [".whl",
# ".gpu_data"]`). Total about 22 MiB (limit 64 MiB). See docs/gpu.md.
#
#   bash benchmarks/gpu_prepare.sh
#
# The GPU image has absl-py, numpy, rich, h5py, ml-dtypes, packaging,
# typing-extensions, pillow, matplotlib, jax (CUDA) and torch, but no keras,
# namex, optree and no TensorFlow (which does not fit in 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."

KERAS_VERSION="${KERAS_VERSION:-3.15.1}"
NAMEX_VERSION="${NAMEX_VERSION:-0.1.0}"
OPTREE_VERSION="${OPTREE_VERSION:-0.20.0}"
# Default: this project's machines lay the archive in ../shared/data.
ARCHIVE="${CIFAR10_ARCHIVE:-$(dirname "$PWD")/shared/data/cifar10-jpeg.tar.gz}"

rm -rf .whl
mkdir -p .whl .gpu_data
python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl \
  "keras==${KERAS_VERSION}" "namex==${NAMEX_VERSION}" \
  "optree==${OPTREE_VERSION}"

# keras' own requirements, to compare with the GPU image (docs/gpu.md).
unzip -p .whl/keras-*.whl '*/METADATA' | grep '^Requires-Dist' || true

if [[ ! -f "${ARCHIVE}" ]]; then
  echo "CIFAR-10 archive not found at ${ARCHIVE}; set CIFAR10_ARCHIVE." >&2
  exit 1
fi
cp -f "${ARCHIVE}" .gpu_data/
du -sh .whl .gpu_data
total_kib=$(du -sck .whl .gpu_data | tail -1 | cut -f1)
if (( total_kib > 60 * 1024 )); then
  echo "Carried files are ${total_kib} KiB > 60 MiB: trim .whl/.gpu_data." >&2
  exit 1
fi
echo "Ready: run benchmarks/gpu_check.sh on the GPU machine with carry" \
  "[.whl, .gpu_data]."
