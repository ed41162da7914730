"""Data-parallel training: TF `MirroredStrategy`, JAX `DataParallel`.

TensorFlow is imported only inside the TF-specific functions, so this module
imports on the JAX and torch backends without TensorFlow installed.

Typical use (any backend):

    with data_parallel_scope() as num_devices:
        validate_global_batch_size(128, num_devices)
        model = build_balpoe_classifier("resnet32", counts)
        model.compile(...)
        model.fit(x, y, ...)

Batch-norm statistics: under `MirroredStrategy` each device normalises with
its own slice of the batch (as the reference's `torch.nn.DataParallel`,
the reference's `train.py`); under JAX `DataParallel` the batch is one
sharded array, so
BN statistics cover the global batch (like SyncBN).
"""

import contextlib
import json
import os

import keras

# keras-team/keras#20585: MultiWorkerMirroredStrategy fails with Keras 3.
_MULTI_WORKER_MESSAGE = (
    "tf.distribute.MultiWorkerMirroredStrategy is not supported: it is broken "
    "with Keras 3 (keras-team/keras#20585). For multi-host training use the "
    "JAX backend (KERAS_BACKEND=jax, training.multi_host; the runner's "
    "--coordinator_address/--num_processes/--process_id), or train on one "
    "host with MirroredStrategy."
)


def get_strategy(devices=None):
    """TF strategy for data parallelism over one host's accelerators.

    Args:
        devices: optional list of device names (e.g. `["/gpu:0", "/gpu:1"]`
            or `["/cpu:0", "/cpu:1"]` for logical CPUs). Default: all
            visible GPUs.

    Returns:
        `tf.distribute.MirroredStrategy` when there are 2+ devices, else
        the default strategy (one device, no replication).

    Raises:
        ValueError: on a non-TF backend, or when `TF_CONFIG` names several
            workers (multi-worker training is refused, see module doc).
    """
    _require_backend("tensorflow", "get_strategy")
    _refuse_multi_worker_tf_config()
    import tensorflow as tf

    if devices is None:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = list(devices)
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=devices)
    if len(devices) == 1 and "GPU" in devices[0].upper():
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.get_strategy()


def validate_strategy(strategy):
    """Raises for strategies we refuse (MultiWorkerMirroredStrategy)."""
    if type(strategy).__name__.startswith("MultiWorkerMirroredStrategy"):
        raise ValueError(_MULTI_WORKER_MESSAGE)
    return strategy


def get_data_parallel(devices=None):
    """JAX `keras.distribution.DataParallel` over all (or given) devices.

    In a multi-process run (`training.multi_host.initialize` first) the
    devices are those of all processes, and each process feeds its own
    share of every global batch (`balpoe_keras.data.batching.process_rows`),
    so Keras does not shard the input again (`auto_shard_dataset=False`).

    Args:
        devices: optional list of JAX devices or `"cpu:0"`-style names.
            Default: `keras.distribution.list_devices()`.

    Returns:
        The `keras.distribution.DataParallel` (not yet set globally).
    """
    _require_backend("jax", "get_data_parallel")
    import jax

    if devices is None:
        devices = keras.distribution.list_devices()
    return keras.distribution.DataParallel(
        devices=list(devices), auto_shard_dataset=jax.process_count() == 1)


@contextlib.contextmanager
def data_parallel_scope(devices=None):
    """Context for building, compiling and fitting a data-parallel model.

    TF: enters `get_strategy(devices).scope()`. JAX: sets
    `get_data_parallel(devices)` as the global distribution for the
    duration (and restores the previous one). torch: no replication (one
    device); passing `devices` raises.

    Yields:
        int, the number of devices the global batch is split over.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = get_strategy(devices)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    elif backend == "jax":
        distribution = get_data_parallel(devices)
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(distribution)
        try:
            yield len(distribution.device_mesh.devices.reshape(-1))
        finally:
            keras.distribution.set_distribution(previous)
    else:
        if devices is not None and len(list(devices)) > 1:
            raise ValueError(
                f"Data parallelism is not supported on the {backend} "
                "backend. Use KERAS_BACKEND=tensorflow or jax, or "
                "devices=None for one device."
            )
        yield 1


def validate_global_batch_size(global_batch_size, num_replicas):
    """Checks the global batch splits evenly; returns the per-device size.

    Args:
        global_batch_size: int, examples per optimizer step, all devices.
        num_replicas: int, e.g. `strategy.num_replicas_in_sync`.

    Returns:
        int, `global_batch_size // num_replicas`.

    Raises:
        ValueError: if the batch does not divide evenly, naming the fix.
    """
    if int(global_batch_size) != global_batch_size or global_batch_size < 1:
        raise ValueError(
            "Expected global_batch_size to be an integer >= 1. Received: "
            f"global_batch_size={global_batch_size}"
        )
    if global_batch_size % num_replicas:
        lower = max(1, global_batch_size // num_replicas) * num_replicas
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{num_replicas} devices. Use a multiple of {num_replicas} "
            f"(e.g. {lower} or {lower + num_replicas}) or change the "
            "devices."
        )
    return int(global_batch_size) // int(num_replicas)


def _require_backend(backend, function_name):
    if keras.backend.backend() != backend:
        raise ValueError(
            f"{function_name}() needs KERAS_BACKEND={backend}; the current "
            f"backend is {keras.backend.backend()}. Use "
            "data_parallel_scope() for backend-independent code."
        )


def _refuse_multi_worker_tf_config():
    config = os.environ.get("TF_CONFIG")
    if not config:
        return
    try:
        cluster = json.loads(config).get("cluster", {})
    except (ValueError, AttributeError):
        return
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers > 1:
        raise ValueError(_MULTI_WORKER_MESSAGE)
