"""Limits for benchmark processes: room for many sockets, and no process outliving the run."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys

# Children learn which process started them, to notice when it is gone.
PARENT_PID_VARIABLE = "AITASKS_BENCH_PARENT_PID"
# Linux prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit; return the new limit.

    Each WebSocket is a file descriptor on both ends, and the default soft limit (often
    1,024) is far below the ten thousand sockets a benchmark holds.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard or hard == resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def exit_with_parent() -> None:
    """Get SIGTERM when the benchmark runner dies, even by SIGKILL, so nothing is left."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    expected = os.environ.get(PARENT_PID_VARIABLE)
    if expected and os.getppid() != int(expected):
        # The runner died before the line above took effect.
        os.kill(os.getpid(), signal.SIGTERM)
