#!/usr/bin/env bash
# Runs the test suite once per Keras backend (the backend is fixed at
# `import keras`, so each needs its own pytest process). Extra arguments go
# to every pytest call, e.g. `bash tests/run_all_backends.sh --run_large`.
#
# The three pytest processes run side by side: most tests are single-
# threaded Python, compilation and subprocess start-up, so on 2 cores the
# suite ends in about 60% of the time it takes one backend after another.
# Each backend's output is printed whole when it ends. SEQUENTIAL=1 runs
# them one after the other with live output; BACKENDS="jax torch" picks.
set -u
backends=(${BACKENDS:-tensorflow jax torch})
status=0
if [[ "${SEQUENTIAL:-0}" == 1 ]]; then
  for backend in "${backends[@]}"; do
    echo "=== KERAS_BACKEND=${backend}"
    KERAS_BACKEND=${backend} python -m pytest -q "$@" || status=1
  done
  exit ${status}
fi
logs=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "${logs}"' EXIT
declare -A pids
for backend in "${backends[@]}"; do
  KERAS_BACKEND=${backend} python -m pytest -q "$@" \
    > "${logs}/${backend}.log" 2>&1 &
  pids[${backend}]=$!
done
echo "=== pytest on ${backends[*]} side by side (SEQUENTIAL=1: one by one)"
for backend in "${backends[@]}"; do
  wait "${pids[${backend}]}" || status=1
  echo "=== KERAS_BACKEND=${backend}"
  cat "${logs}/${backend}.log"
done
exit ${status}
