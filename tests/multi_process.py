"""Starts the processes of a multi-process JAX run on 127.0.0.1 (tests)."""

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(devices_per_process=1, **extra):
    """The environment of one process: JAX on its CPU devices."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KERAS_DISTRIBUTION", "SLURM_", "OMPI_"))}
    env.update(dict(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                    PYTHONPATH=ROOT, PYTHONUNBUFFERED="1",
                    XLA_FLAGS=("--xla_force_host_platform_device_count="
                               f"{devices_per_process}")), **extra)
    return env


class Processes:
    """N processes started together; all are killed if one fails or they
    run past `timeout` seconds.

    Args:
        command: `fn(process_id, address) -> argv` (after the Python
            executable).
        num_processes: int.
        env: environment of every process.
        cwd: working folder.
    """

    def __init__(self, command, num_processes, env, cwd=None):
        self.command, self.num_processes = command, num_processes
        self.env, self.cwd = env, cwd
        self.procs, self.address = [], None

    def start(self):
        self.address = f"127.0.0.1:{free_port()}"
        self.procs = [subprocess.Popen(
            [sys.executable, *self.command(i, self.address)], env=self.env,
            cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for i in range(self.num_processes)]
        return self

    def kill(self, index=None):
        for i, proc in enumerate(self.procs):
            if index in (None, i) and proc.poll() is None:
                proc.kill()

    def wait(self, timeout):
        """`[(returncode, stdout, stderr)]` once every process ended."""
        deadline = time.time() + timeout
        outputs = [None] * len(self.procs)
        try:
            for i, proc in enumerate(self.procs):
                left = max(1.0, deadline - time.time())
                out, err = proc.communicate(timeout=left)
                outputs[i] = (proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self.kill()
        return outputs


def run_processes(command, num_processes, env, cwd=None, timeout=300,
                  attempts=3):
    """Runs the processes to the end; retries when the port was taken.

    Returns:
        `[(returncode, stdout, stderr)]`, one per process.
    """
    for attempt in range(attempts):
        outputs = Processes(command, num_processes, env, cwd).start().wait(
            timeout)
        taken = any("Address already in use" in err or "Failed to bind" in err
                    for _, _, err in outputs)
        if not taken or attempt == attempts - 1:
            return outputs
    return outputs
