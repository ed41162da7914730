"""JAX-only: one training run over several processes (hosts).

`initialize` starts JAX's distributed runtime in every process, before any
JAX computation: from explicit settings (the runner's
`--coordinator_address`, `--num_processes`, `--process_id`), from Keras'
variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`,
`..._PROCESS_ID`), or from a SLURM or Open MPI launch of several tasks,
which JAX reads itself. Afterwards `keras.distribution.list_devices()`
lists the devices of all processes.

The run's conventions (`balpoe_keras.experiments.runner`): every process
feeds its share of each global batch (`balpoe_keras.data.batching.
process_rows`), process 0 writes the run folder (`RunFolder(writer=...)`),
and processes meet at `barrier`s, which fail after a bounded time. A
process that dies makes the others fail within seconds (a collective
fails) or within `heartbeat_timeout_seconds` (the runtime stops hearing
from it); `lost_processes` names the processes that stopped.
"""

import contextlib
import dataclasses
import os
import re
import time

import keras

ENV_ADDRESS = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 30
_ADDRESS = re.compile(r"^[^:\s,]+:\d{1,5}$")


class ProcessLostError(RuntimeError):
    """Another process of the run stopped; the message names it."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """How this process joins a multi-process run.

    Attributes:
        coordinator_address: `"host:port"` of process 0's coordinator, or
            None when the cluster environment provides it (SLURM, MPI).
        num_processes: int, processes in the run (None: from the cluster).
        process_id: int, this process (None: from the cluster).
        source: where the settings came from (for the start-up summary).
    """

    coordinator_address: str = None
    num_processes: int = None
    process_id: int = None
    source: str = "flags"


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """The processes of a run, as this process sees them.

    Attributes:
        num_processes: int >= 1.
        process_index: int in `[0, num_processes)`.
        num_devices: int, devices over all processes.
    """

    num_processes: int = 1
    process_index: int = 0
    num_devices: int = 1

    @property
    def is_writer(self):
        """True for the one process that writes the run folder."""
        return self.process_index == 0

    @property
    def multi_process(self):
        return self.num_processes > 1


def detect_launch(coordinator_address=None, num_processes=None,
                  process_id=None, environ=None):
    """The `Launch` of explicit settings or of the environment, or None for
    a one-process run.

    Explicit settings must come together: all three, or
    `num_processes=1` alone. Without them, Keras' `KERAS_DISTRIBUTION_*`
    variables, then a SLURM or Open MPI launch of several tasks are used.

    Raises:
        ValueError: inconsistent or incomplete settings, naming the flags.
    """
    environ = os.environ if environ is None else environ
    given = [v is not None for v in (coordinator_address, num_processes,
                                     process_id)]
    if any(given):
        if num_processes == 1 and not given[0] and process_id in (None, 0):
            return None
        if not all(given):
            raise ValueError(
                "--coordinator_address, --num_processes and --process_id go "
                "together (the same address and count in every process, "
                "its own id in each). Received: coordinator_address="
                f"{coordinator_address!r}, num_processes={num_processes!r},"
                f" process_id={process_id!r}")
        return _checked(Launch(coordinator_address, num_processes,
                               process_id, "flags"))
    if environ.get(ENV_NUM_PROCESSES):
        count = int(environ[ENV_NUM_PROCESSES])
        if count <= 1:
            return None
        address = environ.get(ENV_ADDRESS, "").split(",")[0] or None
        return _checked(Launch(address, count,
                               int(environ.get(ENV_PROCESS_ID, -1)),
                               "KERAS_DISTRIBUTION_* variables"))
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
             "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in environ for k in slurm) and int(environ["SLURM_NTASKS"]) > 1:
        return Launch(source="SLURM")
    if ("OMPI_MCA_orte_hnp_uri" in environ
            and int(environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1):
        return Launch(source="Open MPI")
    return None


def _checked(launch):
    count, index = launch.num_processes, launch.process_id
    if int(count) != count or count < 1:
        raise ValueError(f"--num_processes must be >= 1. Received: {count}")
    if int(index) != index or not 0 <= index < count:
        raise ValueError(
            f"--process_id must be in [0, {count}) for --num_processes="
            f"{count}. Received: {index}")
    address = launch.coordinator_address
    if count > 1 and (not address or not _ADDRESS.match(address)):
        raise ValueError(
            "--coordinator_address must be host:port of process 0 (e.g. "
            f"10.0.0.1:1234). Received: {address!r}")
    return launch


def initialize(launch, heartbeat_timeout_seconds=None):
    """Starts JAX's distributed runtime for `launch` (call once, first).

    Args:
        launch: a `Launch` (`detect_launch`).
        heartbeat_timeout_seconds: after how long without news of a process
            the runtime gives up on it (default 30).

    Returns:
        The `ProcessGroup` (`current_group()`).

    Raises:
        ValueError: on a backend other than JAX.
    """
    if keras.backend.backend() != "jax":
        raise ValueError(
            "Training over several processes needs KERAS_BACKEND=jax; this "
            f"is the {keras.backend.backend()} backend (TensorFlow's "
            "MultiWorkerMirroredStrategy does not work with Keras 3, "
            "keras-team/keras#20585). Drop --coordinator_address/"
            "--num_processes/--process_id to train in one process.")
    import jax

    jax.distributed.initialize(
        coordinator_address=launch.coordinator_address,
        num_processes=launch.num_processes, process_id=launch.process_id,
        heartbeat_timeout_seconds=(heartbeat_timeout_seconds
                                   or DEFAULT_HEARTBEAT_TIMEOUT_SECONDS))
    return current_group()


def current_group():
    """This process's `ProcessGroup` (one process on TF and PyTorch, or
    before `initialize`)."""
    if keras.backend.backend() != "jax":
        return ProcessGroup()
    import jax

    return ProcessGroup(jax.process_count(), jax.process_index(),
                        jax.device_count())


@contextlib.contextmanager
def without_distribution():
    """Keras' global distribution unset inside the block (restored after):
    models built and run there use this process's devices only."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def local_saving():
    """Context for `model.save` by one process of a multi-process run.

    Saving creates helper variables (Keras builds a throw-away optimizer to
    list what to skip); under the run's distribution each would be a
    cross-process array whose creation waits for the other processes,
    which are not saving. Outside a multi-process run it does nothing.
    """
    if current_group().multi_process:
        return without_distribution()
    return contextlib.nullcontext()


def _coordination_client():
    """JAX's coordination-service client, or None.

    None unless `jax.distributed.is_initialized()` (public). The client
    itself has no public accessor in JAX (0.10): it is the one thing here
    read from `jax._src`, because only it offers a barrier with a timeout
    (`wait_at_barrier`) and the list of live processes (`get_live_nodes`),
    which name a lost process (JAX's own `multihost_utils.live_devices`
    reads the same attribute). Should a JAX release move it, `barrier`
    falls back to the public `multihost_utils.sync_global_devices` (no
    timeout) and `lost_processes` to `[]`.
    """
    import jax

    if not jax.distributed.is_initialized():
        return None
    try:
        from jax._src import distributed

        return distributed.global_state.client
    except (ImportError, AttributeError):
        return None


def lost_processes(group=None):
    """The indices of the processes the runtime no longer hears from."""
    group = group or current_group()
    if not group.multi_process:
        return []
    client = _coordination_client()
    if client is None:
        return []
    try:
        live = client.get_live_nodes(list(range(group.num_processes)))
    except Exception:  # The coordinator (process 0) itself is gone.
        return [0]
    return sorted(set(range(group.num_processes)) - set(live))


def barrier(name, timeout_seconds=600, group=None):
    """Waits until every process reaches `barrier(name)`.

    Raises:
        ProcessLostError: when a process does not arrive within
            `timeout_seconds` or has stopped, naming it.
    """
    group = group or current_group()
    if not group.multi_process:
        return
    client = _coordination_client()
    try:
        if client is None:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"balpoe_keras/{name}")
        else:
            client.wait_at_barrier(f"balpoe_keras/{name}",
                                   int(timeout_seconds * 1000))
    except Exception as e:
        raise ProcessLostError(describe_failure(e, group)) from None


def describe_failure(error, group=None, wait_seconds=None):
    """A one-line message for a failure of a multi-process step.

    Waits up to `wait_seconds` (default: the heartbeat timeout and 5 s)
    for the runtime to tell which process stopped, so the message names
    it.
    """
    group = group or current_group()
    wait = (DEFAULT_HEARTBEAT_TIMEOUT_SECONDS + 5 if wait_seconds is None
            else wait_seconds)
    deadline = time.time() + wait
    lost = lost_processes(group)
    while not lost and time.time() < deadline:
        time.sleep(1.0)
        lost = lost_processes(group)
    who = (f"process(es) {', '.join(map(str, lost))} of {group.num_processes}"
           " stopped" if lost else "another process failed or is too slow")
    first = str(error).strip().splitlines()[0][:300] if str(error) else ""
    return (f"{who} (seen by process {group.process_index}: "
            f"{type(error).__name__}: {first}). Rerun every process with the "
            "same command to resume from the last checkpoint.")
