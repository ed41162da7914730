#!/usr/bin/env bash
# The GPU check: one training run of the paper's CIFAR-10-LT setting and the
# throughput tables, on a GPU machine with JAX (CUDA) and/or PyTorch; it
# needs neither TensorFlow nor network access. Copy the repository to the
# GPU machine together with .whl/ and .gpu_data/ (written by
# benchmarks/gpu_prepare.sh on a machine with internet access), then run,
# there, from any folder:
#
#   bash benchmarks/gpu_check.sh                  # about 10 minutes + install
#   GPU_OUT=/tmp/check bash benchmarks/gpu_check.sh
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh # smoke test, CPU, minutes
#
# 1. benchmarks/gpu_env.sh: installs the wheels, blocks TensorFlow;
# 2. trains CIFAR-10-LT IR100 BalPoE + Mixup with the reference recipe
#    through the experiment runner (experiments/cifar10_folder_ir100_
#    standard.flags, JAX, the TensorFlow-free arrays input) and prints the
#    test report;
# 3. prints the input-path and model throughput tables
#    (benchmarks/arrays_throughput.py, benchmarks/throughput.py).
#
# Outputs in GPU_OUT (default: gpu_out/ in the repository root):
# gpu_check.log, train_log.csv, report.md, report.json, reliability.png,
# throughput_b<B>.json.
#
# Environment variables:
#   GPU_OUT                 the output folder (see above).
#   GPU_DATA                folder of cifar10-jpeg.tar.gz (default
#                           .gpu_data/, else the runner's usual places).
#   GPU_CHECK_TINY=1        1 epoch of 3 steps of ResNet-8, batch 32, no
#                           throughput tables (a CPU smoke test of the
#                           whole script).
#   GPU_CHECK_TRAIN_ARGS    extra runner flags (e.g. "--epochs=100").
#   GPU_CHECK_BACKEND       Keras backend for training (default jax).
#   GPU_CHECK_CONFIGS       throughput configs (default jax,jax_bf16,torch).
#   GPU_CHECK_BATCHES       throughput batch sizes (default "128 512").
#   GPU_CHECK_TRAIN_TIMEOUT seconds for training (default 340: the parts
#                           end within about 10 minutes plus the install;
#                           200 epochs need more, about 6 min of training
#                           on an H200: a run cut short resumes when rerun
#                           with the same GPU_CHECK_WORKDIR).
#   GPU_CHECK_TP_TIMEOUT    seconds per throughput table (default 90), each
#                           config at most its share, the budget over
#                           (configs + 1) (a slower one is skipped and
#                           named, the table kept).
#   GPU_CHECK_WORKDIR       scratch folder (default: a new one in /tmp);
#                           rerunning with the same one resumes training
#                           from its last checkpoint.
#   GPU_CHECK_MULTI_SEED=1  also time 5 seeds trained together in one
#                           vmapped JAX program against one seed alone
#                           (+ ~4 min).
#   GPU_CHECK_TORCH_OVERHEAD=1  also the PyTorch backend's fixed cost per
#                           step at batch 2 against the plain PyTorch
#                           replica (benchmarks/torch_overhead.py, ~1 min).
#   GPU_SKIP_INSTALL=1      use the keras already importable.
#   GPU_CHECK_SKIP_THROUGHPUT=1, GPU_CHECK_SKIP_TRAIN=1  skip a part.
set -uo pipefail
# A relative GPU_OUT is relative to the caller's folder.
[[ -n "${GPU_OUT:-}" ]] && GPU_OUT="$(realpath -m -- "${GPU_OUT}")"
cd "$(dirname "$0")/.."
TINY="${GPU_CHECK_TINY:-0}"
WORK="${GPU_CHECK_WORKDIR:-$(mktemp -d /tmp/balpoe_gpu_check.XXXXXX)}"
[[ "${TINY}" == 1 ]] && export GPU_SKIP_INSTALL="${GPU_SKIP_INSTALL:-1}"
GPU_OUT="${GPU_OUT:-${PWD}/gpu_out}"
mkdir -p "${GPU_OUT}"
exec > >(tee -a "${GPU_OUT}/gpu_check.log") 2>&1
echo "== balpoe_keras GPU check $(date -u +%FT%TZ) tiny=${TINY} work=${WORK}"
# Training's backend; throughput.py sets its own.
export KERAS_BACKEND="${GPU_CHECK_BACKEND:-jax}"
source benchmarks/gpu_env.sh
TIMEOUT="${GPU_CHECK_TRAIN_TIMEOUT:-340}"
status=0

if [[ "${GPU_CHECK_SKIP_TRAIN:-0}" != 1 ]]; then
  echo "== CIFAR-10-LT IR100 BalPoE + Mixup (the experiment runner)"
  args=(--flagfile=experiments/cifar10_folder_ir100_standard.flags
        --workdir="${WORK}/train")
  [[ -n "${DATA}" ]] && args+=(--data_dir="${DATA}")
  [[ "${TINY}" == 1 ]] && args+=(--architecture=resnet8 --epochs=1
    --warmup_epochs=1
    --lr_step_epochs= --max_train_steps_per_epoch=3 --batch_size=32
    --eval_batch_size=100 --notest_distributions)
  # shellcheck disable=SC2206
  args+=(${GPU_CHECK_TRAIN_ARGS:-})
  BALPOE_KERAS_CACHE="${BALPOE_KERAS_CACHE:-${WORK}/cache}" \
    timeout "${TIMEOUT}" python3 -m balpoe_keras.experiments.run "${args[@]}"
  rc=$?
  if (( rc == 124 )); then
    echo "training reached its ${TIMEOUT} s budget; rerun with" \
      "GPU_CHECK_WORKDIR=${WORK} to resume it from its last checkpoint."
  elif (( rc != 0 )); then
    echo "training failed (exit ${rc}); see above."
    status=1
  fi
  for f in train/train_log.csv train/report/report.md \
           train/report/report.json train/report/reliability.png; do
    [[ -f "${WORK}/${f}" ]] && cp "${WORK}/${f}" "${GPU_OUT}/"
  done
  [[ -f "${GPU_OUT}/report.md" ]] && cat "${GPU_OUT}/report.md"
fi

if [[ "${GPU_CHECK_MULTI_SEED:-0}" == 1 ]]; then
  # Images/s of 5 seeds trained together (one vmapped program) vs one alone
  # (3 epochs each; the first includes compilation, compare epochs 2-3).
  echo "== several seeds in one JAX program (--seeds=1,2,3,4,5)"
  margs=(--flagfile=experiments/cifar10_folder_ir100_standard.flags
         --epochs=3 --warmup_epochs=1 --lr_step_epochs= --noexport
         --notest_distributions)
  [[ -n "${DATA}" ]] && margs+=(--data_dir="${DATA}")
  BALPOE_KERAS_CACHE="${WORK}/cache" timeout 200 python3 -m \
    balpoe_keras.experiments.run "${margs[@]}" --workdir="${WORK}/one_seed" \
    --seed=1 | grep -E "^Epoch" || status=1
  BALPOE_KERAS_CACHE="${WORK}/cache" timeout 300 python3 -m \
    balpoe_keras.experiments.run "${margs[@]}" --workdir="${WORK}/five_seeds" \
    --seeds=1,2,3,4,5 | grep -E "^Epoch" || status=1
fi

if [[ "${GPU_CHECK_TORCH_OVERHEAD:-0}" == 1 ]]; then
  echo "== PyTorch backend: fixed cost per step (benchmarks/torch_overhead.py)"
  oargs=(--repeats 3 --inner 10)
  [[ "${TINY}" == 1 ]] && oargs=(--repeats 1 --inner 1)
  timeout 120 python3 benchmarks/torch_overhead.py "${oargs[@]}" || status=1
fi

if [[ "${GPU_CHECK_SKIP_THROUGHPUT:-${TINY}}" != 1 ]]; then
  echo "== input path throughput (benchmarks/arrays_throughput.py)"
  KERAS_BACKEND=jax timeout 60 python3 benchmarks/arrays_throughput.py \
    --repeats 2 || status=1
  configs="${GPU_CHECK_CONFIGS:-jax,jax_bf16,torch}"
  IFS=, read -ra config_list <<< "${configs}"
  # Each config its share of the table's budget, one share left for the
  # script's own start and the matmul peak: a slow config is skipped and
  # named, the table written.
  share=$(( ${GPU_CHECK_TP_TIMEOUT:-90} / (${#config_list[@]} + 1) ))
  (( share < 1 )) && share=1
  for batch in ${GPU_CHECK_BATCHES:-128 512}; do
    echo "== model throughput, batch ${batch} (benchmarks/throughput.py)"
    timeout "${GPU_CHECK_TP_TIMEOUT:-90}" python3 benchmarks/throughput.py \
      --timeout "${share}" --configs "${configs}" \
      --batch_size "${batch}" --steps 10 --repeats 2 \
      --out "${GPU_OUT}/throughput_b${batch}.json" || status=1
  done
fi

echo "== done (status ${status}); outputs in ${GPU_OUT}: $(ls "${GPU_OUT}" | xargs)"
exit "${status}"
