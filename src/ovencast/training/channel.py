"""The progress channel of a pool process: where its products' events go.

A pool process gets its channel once, when the pool starts it (`install`, the pool's
initializer), as an argument of its creation: a multiprocessing queue can only be handed
to a process that way, never inside a task. It is the one piece of process state the
pool's tasks read; nothing else changes what they do. (A Manager queue could travel in
the tasks, but its server process outlives a SIGKILLed parent and with it keeps the fork
server alive: docs/decisions/005-worker-start-up.md.)
"""

from __future__ import annotations

from typing import Any

from ovencast.events.progress import ProductEvent

_queue: Any = None


def install(queue: Any) -> None:
    """The pool's initializer: this process's events go to `queue` from now on."""
    global _queue
    _queue = queue


def send(event: ProductEvent) -> None:
    """Put `event` on this process's channel; dropped where the pool installed none."""
    if _queue is not None:
        _queue.put(event)
