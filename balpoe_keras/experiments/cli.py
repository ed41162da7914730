"""Start-up of the command-line tools: TensorFlow's settings, quiet import.

Each tool (`python -m balpoe_keras.experiments.run`, `... .evaluate`,
`... .predict`, `... .info`) calls `start()` before anything imports
Keras, checks its flags, then calls `load_keras()`, so a usage error is
reported at once, without the seconds TensorFlow takes to load:

1. `start()` turns TensorFlow's oneDNN CPU kernels on unless the user
   chose (`TF_ENABLE_ONEDNN_OPTS` unset -> `1`): TensorFlow enables them
   only on some CPUs, and on AVX2 CPUs they train the ResNet-32 about 2x
   faster (benchmarks/RESULTS.md); TensorFlow reads the variable once, at
   import. It also sets `TF_CPP_MIN_LOG_LEVEL=3` unless set, for this
   process's later C++ logging and for the tools' subprocesses (the
   SavedModel export).
2. `load_keras()` imports Keras (and with it TensorFlow on the TensorFlow
   backend) and the package with file descriptor 2 sent to /dev/null,
   unless `--verbosity` (absl's flag) is given: TensorFlow 2.19+ prints C++
   INFO lines at import that `TF_CPP_MIN_LOG_LEVEL` no longer silences
   (tensorflow/tensorflow#100442); Python errors still surface, raised
   after stderr is restored.

`import balpoe_keras` itself does none of this (it changes no environment
variable and no file descriptor); while Python locates a tool's module it
leaves the core for `load_keras()` to import.
"""

import contextlib
import os
import sys

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def verbose_requested(argv=None):
    """True if the command line sets absl's `--verbosity`/`-v` to >= 0."""
    argv = sys.argv if argv is None else argv
    return any(a.startswith(("--verbosity", "-v")) and not a.endswith(
        ("=-1", "=-2", "=-3")) for a in argv[1:])


def tensorflow_environment(environ=None, verbose=False):
    """The environment variables `start()` sets: `{name: value}` for those
    not already in `environ` (the user's setting wins)."""
    environ = os.environ if environ is None else environ
    wanted = {ONEDNN_VARIABLE: "1"}
    if not verbose:
        wanted["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {k: v for k, v in wanted.items() if k not in environ}


@contextlib.contextmanager
def stderr_silenced(enabled=True):
    """Sends file descriptor 2 to /dev/null inside the block."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start(argv=None):
    """Sets TensorFlow's start-up variables for a command-line tool
    (`tensorflow_environment`); call it first in a tool's module, before
    any import of Keras.

    Args:
        argv: the command line (default `sys.argv`), read for
            `--verbosity`.
    """
    os.environ.update(tensorflow_environment(
        verbose=verbose_requested(argv)))


def load_keras(argv=None):
    """Imports Keras and balpoe_keras's core for a tool, quietly unless
    `--verbosity` is given; call it once the flags are checked (a no-op
    when they are already imported).

    Args:
        argv: the command line (default `sys.argv`), read for
            `--verbosity`.
    """
    import balpoe_keras

    with stderr_silenced(not verbose_requested(argv)):
        import keras  # noqa: F401

        balpoe_keras._load_core()


def fail(message):
    """Prints a one-line error (no usage dump) and exits with status 2:
    how every tool reports a usage error."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
