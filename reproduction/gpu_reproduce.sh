#!/usr/bin/env bash
# Paired 200-epoch runs on one GPU: the PyTorch replica of the reference
# recipe (reproduction/reference_train.py) and balpoe_keras (JAX,
# TensorFlow-free arrays input), CIFAR-10-LT IR100 from the JPEG archive,
# BalPoE + Mixup 0.8, side by side; then the paired table
# (reproduction/paired.py). Copy the repository to the GPU machine together
# with .whl/ and .gpu_data/ (written by benchmarks/gpu_prepare.sh on a
# machine with internet access), then run, there, from any folder:
#
#   bash reproduction/gpu_reproduce.sh           # trains for GPU_REPRO_BUDGET
#   bash reproduction/gpu_reproduce.sh           # again: resumes, then table
#   GPU_REPRO_TINY=1 GPU_REPRO_DATA=<folder with the archive> \
#     bash reproduction/gpu_reproduce.sh         # smoke test, CPU, minutes
#
# All runs start together (one ResNet-32 at batch 128 leaves an H200 mostly
# idle) and each stops after the time budget; every run checkpoints every 5
# epochs into GPU_REPRO_RUNS, and rerunning the script resumes the
# unfinished ones and skips the finished ones. Expected on one H200: the
# replica needs two invocations at the default budget (eager ~3,000
# images/s, compiled more), the JAX runs one (6,800-9,500 images/s alone).
#
# Outputs in GPU_OUT (default: gpu_out/ in the repository root):
# gpu_reproduce.log (everything, with each run's last lines), paired.md (the
# table, also printed), paired_reliability.png (where matplotlib is), and
# resume_<run>.tar for each unfinished run (its latest checkpoint and logs,
# about 11 MB). To continue an unfinished run on another machine, put its
# resume_<run>.tar into .gpu_resume/ in the repository root there and run
# the script again: it unpacks them before starting.
#
# Environment variables:
#   GPU_OUT                 the output folder (see above).
#   GPU_REPRO_RUNS          run folders (default: gpu_runs/ in the
#                           repository root; git-ignored).
#   GPU_REPRO_DATA          folder of cifar10-jpeg.tar.gz (default: GPU_DATA,
#                           else .gpu_data/).
#   GPU_REPRO_REPLICA_SEEDS seeds of the replica (default "1 2").
#   GPU_REPRO_JAX_SEEDS     seeds of balpoe_keras on JAX (default "1").
#   GPU_REPRO_VARIANTS      "bf16 b512": also JAX runs (seed 1) in mixed
#                           bfloat16 and at batch 512 with the learning rate
#                           scaled linearly (0.4).
#   GPU_REPRO_EPOCHS        epochs (default 200; the schedule is scaled by
#                           balpoe_keras.experiments.config.
#                           scale_step_schedule).
#   GPU_REPRO_BUDGET        seconds of training per invocation (default 500).
#   GPU_REPRO_COMPILE=1     torch.compile the replica (default 1 on CUDA).
#   GPU_REPRO_TINY=1        2 epochs on a few batches, small budget, one
#                           block per stage on both paths (a CPU smoke test).
#   GPU_SKIP_INSTALL=1      use the keras already importable.
set -uo pipefail
# A relative GPU_OUT is relative to the caller's folder.
[[ -n "${GPU_OUT:-}" ]] && GPU_OUT="$(realpath -m -- "${GPU_OUT}")"
cd "$(dirname "$0")/.."
TINY="${GPU_REPRO_TINY:-0}"
[[ "${TINY}" == 1 ]] && export GPU_SKIP_INSTALL="${GPU_SKIP_INSTALL:-1}"
GPU_OUT="${GPU_OUT:-${PWD}/gpu_out}"
mkdir -p "${GPU_OUT}"
exec > >(tee -a "${GPU_OUT}/gpu_reproduce.log") 2>&1
RUNS="${GPU_REPRO_RUNS:-${PWD}/gpu_runs}"
WORK="${RUNS}/work"
echo "== balpoe_keras paired GPU runs $(date -u +%FT%TZ) tiny=${TINY}"
source benchmarks/gpu_env.sh
if [[ -z "${DATA}" && -z "${GPU_REPRO_DATA:-}" ]]; then
  echo "No .gpu_data/cifar10-jpeg.tar.gz: run benchmarks/gpu_prepare.sh" \
    "and copy .gpu_data/ here, or set GPU_REPRO_DATA." >&2
  exit 1
fi
DATA="${GPU_REPRO_DATA:-${DATA}}"
EPOCHS="${GPU_REPRO_EPOCHS:-$([[ ${TINY} == 1 ]] && echo 2 || echo 200)}"
BUDGET="${GPU_REPRO_BUDGET:-$([[ ${TINY} == 1 ]] && echo 280 || echo 500)}"
REPLICA_SEEDS="${GPU_REPRO_REPLICA_SEEDS-1 2}"
JAX_SEEDS="${GPU_REPRO_JAX_SEEDS-1}"
DEVICE=cpu
python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
  && DEVICE=cuda
COMPILE="${GPU_REPRO_COMPILE:-$([[ ${DEVICE} == cuda ]] && echo 1 || echo 0)}"
read -r WARMUP STEPS < <(python3 -c "
from balpoe_keras.experiments.config import scale_step_schedule as s
w, st = s(${EPOCHS}); print(w, ','.join(map(str, st)))")
echo "epochs ${EPOCHS} (warm-up ${WARMUP}, LR drops after ${STEPS}), budget" \
  "${BUDGET} s, replica seeds [${REPLICA_SEEDS}] on ${DEVICE}" \
  "(compile=${COMPILE}), JAX seeds [${JAX_SEEDS}]"
mkdir -p "${RUNS}"
for tar in .gpu_resume/resume_*.tar; do
  [[ -f "${tar}" ]] || continue
  name=$(basename "${tar}" .tar); name=${name#resume_}
  [[ -d "${RUNS}/${name}" ]] || { echo "unpacking ${tar}"; \
    tar -xf "${tar}" -C "${RUNS}"; }
done

tiny_replica=(); tiny_runner=()
if [[ "${TINY}" == 1 ]]; then
  tiny_replica=(--tiny=256 --blocks_per_stage=1 --threads=1
                --imbalance_ratio=10)
  tiny_runner=(--architecture=resnet8 --max_train_steps_per_epoch=2
               --batch_size=32
               --eval_batch_size=250 --notest_distributions
               --imbalance_ratio=10)
fi
pids=()
for seed in ${REPLICA_SEEDS}; do
  name="replica_balpoe_mixup_seed${seed}"
  [[ -f "${RUNS}/${name}/report.json" ]] && continue
  args=(--data="${DATA}" --out="${RUNS}/${name}" --epochs="${EPOCHS}"
        --warmup_epochs="${WARMUP}" --lr_step_epochs="${STEPS}"
        --lambdas=1,0,-1 --mixup_alpha=0.8 --seed="${seed}"
        --device="${DEVICE}" --augment=tensor --checkpoint_every=5
        --cache="${WORK}/replica_arrays.npz" "${tiny_replica[@]}")
  [[ "${COMPILE}" == 1 ]] && args+=(--compile)
  timeout "${BUDGET}" python3 reproduction/reference_train.py "${args[@]}" \
    > "${RUNS}/${name}.log" 2>&1 &
  pids+=($!)
done
for seed in ${JAX_SEEDS}; do
  name="arrays_balpoe_mixup_seed${seed}"
  [[ -f "${RUNS}/${name}/report/report.json" ]] && continue
  KERAS_BACKEND=jax BALPOE_KERAS_CACHE="${WORK}/cache" timeout "${BUDGET}" \
    python3 -m balpoe_keras.experiments.run \
    --flagfile=experiments/cifar10_folder_ir100_standard.flags \
    --data_dir="${DATA}" --workdir="${RUNS}/${name}" --seed="${seed}" \
    --epochs="${EPOCHS}" --warmup_epochs="${WARMUP}" \
    --lr_step_epochs="${STEPS}" --input_pipeline=arrays \
    --checkpoint_every=5 "${tiny_runner[@]}" \
    > "${RUNS}/${name}.log" 2>&1 &
  pids+=($!)
done
# Variants of the JAX run, seed 1: bf16, and batch 512 with the LR scaled
# linearly (0.4).
for variant in ${GPU_REPRO_VARIANTS:-}; do
  case "${variant}" in
    bf16) vflags=(--mixed_precision=mixed_bfloat16) ;;
    b512) vflags=(--batch_size=512 --learning_rate_batch_size=128) ;;
    *) echo "unknown variant ${variant} (bf16, b512)"; continue ;;
  esac
  name="arrays_${variant}_balpoe_mixup_seed1"
  [[ -f "${RUNS}/${name}/report/report.json" ]] && continue
  KERAS_BACKEND=jax BALPOE_KERAS_CACHE="${WORK}/cache" timeout "${BUDGET}" \
    python3 -m balpoe_keras.experiments.run \
    --flagfile=experiments/cifar10_folder_ir100_standard.flags \
    --data_dir="${DATA}" --workdir="${RUNS}/${name}" --seed=1 \
    --epochs="${EPOCHS}" --warmup_epochs="${WARMUP}" \
    --lr_step_epochs="${STEPS}" --input_pipeline=arrays \
    --checkpoint_every=5 "${vflags[@]}" "${tiny_runner[@]}" \
    > "${RUNS}/${name}.log" 2>&1 &
  pids+=($!)
done
failed=0  # A run that stopped with an error (124: its budget, resumable).
for pid in "${pids[@]}"; do
  wait "${pid}"; rc=$?
  if (( rc != 0 && rc != 124 )); then
    echo "a run failed (exit ${rc}): see its log below"; failed=1
  fi
done

for log in "${RUNS}"/*.log; do
  [[ -f "${log}" ]] || continue
  echo "== $(basename "${log}") (last lines)"; tail -n 4 "${log}"
done
seeds=$(echo "${REPLICA_SEEDS} ${JAX_SEEDS} 1" | tr ' ' '\n' | grep . \
  | sort -un | paste -sd, -)
pipelines=replica,arrays
for variant in ${GPU_REPRO_VARIANTS:-}; do pipelines+=",arrays_${variant}"; done
figure=()  # Reliability diagrams side by side, where matplotlib is and
# a seed-1 run, the one drawn, has finished (its report holds the bins).
if python3 -c "import matplotlib" 2>/dev/null && {
    compgen -G "${RUNS}/*_seed1/report.json" ||
    compgen -G "${RUNS}/*_seed1/report/report.json"; } > /dev/null; then
  figure=(--figure="${GPU_OUT}/paired_reliability.png")
fi
python3 reproduction/paired.py --table_only --workdir="${RUNS}" "${figure[@]}" \
  --epochs="${EPOCHS}" --pipelines="${pipelines}" --methods=balpoe_mixup \
  --seeds="${seeds}" --device_note="$(nvidia-smi -L 2>/dev/null | head -1 \
  | cut -d"(" -f1 | grep . || echo "${DEVICE}"), replica on ${DEVICE}\
  (compile=${COMPILE}), balpoe_keras on JAX" && cp "${RUNS}/paired.md" "${GPU_OUT}/"

status=0
python3 - "${RUNS}" "${GPU_OUT}" <<'PY' || status=1
"""Packs each unfinished run's latest checkpoint and logs into GPU_OUT."""
import json, os, sys, tarfile
runs, out = sys.argv[1:]
for name in sorted(os.listdir(runs)):
    folder = os.path.join(runs, name)
    if name == "work" or not os.path.isdir(folder):
        continue
    if any(os.path.exists(os.path.join(folder, *p)) for p in (
            ("report.json",), ("report", "report.json"))):
        continue
    keep = [p for p in ("checkpoint.pt", "train_log.csv", "config.json")
            if os.path.exists(os.path.join(folder, p))]
    state = os.path.join(folder, "checkpoints", "state.json")
    if os.path.exists(state):
        with open(state) as f:
            latest = json.load(f)["checkpoint"]
        keep += [os.path.join("checkpoints", "state.json"),
                 os.path.join("checkpoints", latest)]
    if not keep:
        continue
    path = os.path.join(out, f"resume_{name}.tar")
    with tarfile.open(path, "w") as tar:
        for rel in keep:
            tar.add(os.path.join(folder, rel), os.path.join(name, rel))
    print(f"unfinished: {name} -> {path} ({os.path.getsize(path) >> 20} MiB)")
PY
echo "== done; outputs in ${GPU_OUT}: $(ls "${GPU_OUT}" | xargs)"
(( failed )) && status=1
exit "${status}"
