r"""Trains, evaluates and exports a BalPoE model from a flagfile.

    python -m balpoe_keras.experiments.run \
        --flagfile=experiments/quickstart.flags
    cd experiments && python -m balpoe_keras.experiments.run \
        --flagfile=cifar100.flags

One flagfile per paper setting lives in `experiments/`; each reads a shared
base (`--flagfile` inside a flagfile) and states what differs; flags given
after `--flagfile` override it. The backend is chosen with `KERAS_BACKEND`
(tensorflow by default; jax and torch work too, without TensorFlow
installed on the in-memory datasets). This is the only module that defines
and reads the run's flags: they are generated from the fields of
`ExperimentConfig` (one source for names, defaults and help), validated
into a config, and handed to `runner.run_experiment`. Rerunning a command
after a crash resumes it; a rerun with different settings is refused.
"""

import dataclasses
import gc
import os
import sys

from absl import app
from absl import flags

from balpoe_keras.experiments import cli
from balpoe_keras.experiments import config as config_lib

FLAGS = flags.FLAGS
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, bool: flags.DEFINE_boolean}


def define_config_flags(flag_values=FLAGS):
    """Defines one flag per `ExperimentConfig` field, in field order."""
    for field in dataclasses.fields(config_lib.ExperimentConfig):
        meta = field.metadata
        name, help_text = config_lib.flag_name(field), (
            f"[{meta['group']}] {meta['help']}")
        default = field.default
        if meta["choices"]:
            flags.DEFINE_enum(name, default, list(meta["choices"]),
                              help_text, flag_values=flag_values)
        elif meta["item"] is not None:
            flags.DEFINE_list(name, None if default is None else [
                str(v) for v in default], help_text, flag_values=flag_values)
        else:
            _DEFINE[field.type](name, default, help_text,
                                flag_values=flag_values)


define_config_flags()
flags.DEFINE_boolean("dry_run", False,
                     "[Run] Load data and build the model, print the plan, "
                     "stop.")
flags.DEFINE_boolean("show_config", False,
                     "[Run] Print the resolved settings at the start (they "
                     "are always written to <workdir>/config.json).")
flags.DEFINE_boolean("overwrite", False,
                     "[Run] Start from scratch, deleting the workdir's "
                     "checkpoints, logs and record of its settings.")
flags.DEFINE_string("coordinator_address", None,
                    "[Processes] host:port of process 0, the same in every "
                    "process of a multi-process JAX run (docs/training.md, "
                    "'Several hosts'). SLURM and Open MPI launches and "
                    "KERAS_DISTRIBUTION_* variables need none of these "
                    "three flags.")
flags.DEFINE_integer("num_processes", None,
                     "[Processes] Processes of the run (all hosts).")
flags.DEFINE_integer("process_id", None,
                     "[Processes] This process, 0 .. --num_processes - 1; "
                     "process 0 writes the run folder.")


_FLAGFILE = "--flagfile="


def expand_flagfiles(argv, _open=()):
    """`argv` with every `--flagfile=PATH` replaced by that file's flags.

    As absl reads flagfiles (one flag per line; blank lines and lines
    starting with `#` or `//` skipped), except that a `--flagfile` line
    INSIDE a flagfile is relative to that file's folder, so a setting's
    flagfile reads its shared base (`--flagfile=base_cifar.flags`) from
    any working directory. Top-level paths are relative to the working
    directory.

    Raises:
        flags.Error: a missing flagfile or a cycle, naming it.
    """
    out = []
    for arg in argv:
        if not arg.startswith(_FLAGFILE):
            out.append(arg)
            continue
        path = os.path.abspath(arg[len(_FLAGFILE):])
        if path in _open:
            raise flags.Error(f"flagfile {path} includes itself")
        try:
            with open(path) as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise flags.Error(f"cannot read flagfile: {e}") from None
        nested = []
        for line in lines:
            if not line or line.startswith(("#", "//")):
                continue
            if line.startswith(_FLAGFILE):
                line = _FLAGFILE + os.path.join(os.path.dirname(path),
                                                line[len(_FLAGFILE):])
            nested.append(line)
        out += expand_flagfiles(nested, (*_open, path))
    return out


def parse_flags(argv):
    """absl's parser after `expand_flagfiles`; one-line errors."""
    try:
        return FLAGS(expand_flagfiles(argv))
    except flags.Error as e:
        fail(f"{e} (see --helpshort)")


fail = cli.fail  # One-line usage errors, status 2.


def quiet_python_logging():
    """Unless `--verbosity` is given, Python logging shows warnings and
    above (absl's app otherwise logs INFO, and TensorFlow's SavedModel
    export writes several kB of it)."""
    import logging

    from absl import logging as absl_logging

    if not FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv):
    quiet_python_logging()
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; flags look like --name=value"
             " (see --helpshort).")
    try:
        config = config_lib.ExperimentConfig.from_flags(FLAGS)
    except config_lib.ConfigError as e:
        fail(str(e))
    cli.load_keras()  # Flags checked: now the seconds TensorFlow takes.
    from balpoe_keras.experiments import runner
    from balpoe_keras.experiments import workdir
    from balpoe_keras.training import checkpoint
    from balpoe_keras.training import guards
    from balpoe_keras.training import multi_host
    from balpoe_keras.training import workdir_lock

    group = None
    try:
        group = start_processes(config)
        if config.seeds and not FLAGS.dry_run:
            from balpoe_keras.experiments import multi_seed

            multi_seed.run_multi_seed(config, overwrite=FLAGS.overwrite)
        else:
            runner.run_experiment(config, dry_run=FLAGS.dry_run,
                                  overwrite=FLAGS.overwrite,
                                  show_config=FLAGS.show_config,
                                  processes=group)
    except multi_host.ProcessLostError as e:
        fail_now(str(e))
    except config_lib.ConfigError as e:
        fail(str(e))
    except FileNotFoundError as e:  # Missing data: say where and how.
        fail(f"data not found for --dataset={FLAGS.dataset}: {e}")
    except (workdir.WorkdirError, workdir_lock.WorkdirInUseError,
            checkpoint.CheckpointStateError) as e:
        fail(str(e))
    except guards.TrainingInterrupted as e:
        print(e, file=sys.stderr)
        status = e.exit_code
    except (guards.NonFiniteLossError, checkpoint.CheckpointWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        status = 1
    except Exception as e:
        if group is None or not group.multi_process:
            raise
        # A collective failed: another process died or broke off.
        fail_now(multi_host.describe_failure(e, group))
    else:
        return
    # Training stopped (a signal, a NaN loss, a full disk), the state
    # saved. The exception's frames (the input pipeline's iterator, the
    # model) are freed here, while the runtime is whole: left to the
    # interpreter's teardown, tf.data's threads could deadlock it.
    gc.collect()
    raise SystemExit(status)


def start_processes(config):
    """Joins a multi-process JAX run if the flags or the environment say
    so; returns the `ProcessGroup` (None for a one-process run)."""
    from balpoe_keras.training import multi_host

    try:
        launch = multi_host.detect_launch(
            FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None
    if launch is None:
        return None
    if config.seeds:
        raise config_lib.ConfigError(
            "--seeds trains several seeds in one process; it cannot be "
            "combined with a multi-process run.")
    try:
        return multi_host.initialize(launch)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None


def fail_now(message):
    """Prints a one-line error and ends the process at once: the JAX
    runtime of a broken multi-process run would otherwise wait minutes
    for the lost process at exit."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


if __name__ == "__main__":
    cli.start()  # Before Keras: TensorFlow's settings, quiet start-up.
    app.run(main, flags_parser=parse_flags)
