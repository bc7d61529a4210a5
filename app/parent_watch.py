"""A worker of `gatecast serve` exits when its supervisor dies.

uvicorn's supervisor starts the workers and replaces them, but when it is killed outright (SIGKILL, an OOM kill, a
crash) nothing stops them: they would keep answering on the port, unsupervised, until someone finds them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading

log = logging.getLogger("gatecast.server")

GRACE_S = 5.0  # in-flight requests may finish in this time; then the worker ends regardless


def watch_supervisor() -> threading.Thread | None:
    """In a worker started by a supervisor (multiprocessing), a thread that ends this process when the supervisor
    is gone; None in a single-process server, whose parent (a shell, a container's init) is not its supervisor."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return None
    thread = threading.Thread(target=_stop_when_gone, args=(parent,), name="gatecast-supervisor-watch", daemon=True)
    thread.start()
    return thread


def _stop_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # waits on the supervisor's sentinel: returns when that process has ended, however it ended
    log.error("the supervisor (pid %s) is gone: this worker stops", parent.pid)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own shutdown: stop accepting, let requests in flight finish
    threading.Event().wait(GRACE_S)
    os._exit(1)
