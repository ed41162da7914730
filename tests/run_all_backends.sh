#!/usr/bin/env bash
# Runs the test suite once per Keras backend (the backend is fixed at
# `import keras`, so each needs its own pytest process). Extra arguments go
# to every pytest call, e.g. `bash tests/run_all_backends.sh --run_large`.
set -u
status=0
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=${backend}"
  KERAS_BACKEND=${backend} python -m pytest -q "$@" || status=1
done
exit ${status}
