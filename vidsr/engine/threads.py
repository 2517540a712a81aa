"""Bounded hand-offs between pipeline stages, and one stop signal for all of them.

Each stage runs in its own thread so decoding, the network and encoding overlap; the
queues between them are small, so memory does not grow with the length of the video.

A `Crew` owns the threads of one run. The first failure in any of them (or in the caller's
thread: an error on the device, Ctrl-C) is recorded and sets one stop event; every
blocking wait in this module polls that event, so no thread stays parked in a queue
after the run has failed. A stage blocked outside this module (an encoder pipe that is
full) is woken by the `interrupt` callable given to `Crew.shutdown`.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, NoReturn, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_DONE = object()
_POLL_S = 0.05  # how often a blocked wait looks at the stop event
JOIN_TIMEOUT_S = 2.0


class StopPipeline(Exception):
    """Raised inside a stage when another stage has failed and everything should stop."""


class Crew:
    """The threads of one pipeline run, stopped together by the first failure."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._queues: list[queue.Queue] = []

    def fail(self, exc: BaseException) -> None:
        """Record `exc` unless an earlier failure was recorded, and stop every stage."""
        with self._lock:
            if self._error is None and not isinstance(exc, StopPipeline):
                self._error = exc
        self.stop.set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def reraise(self, exc: BaseException) -> NoReturn:
        """Raise what ended the run: the first failure, where `exc` is only the stop it caused."""
        if isinstance(exc, StopPipeline) and self._error is not None:
            raise self._error from None
        raise exc

    def start(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            except StopPipeline:
                pass
            except BaseException as exc:  # handed to the caller's thread by shutdown()
                self.fail(exc)

        # Daemon only so that a stage stuck in a system call cannot keep the interpreter alive;
        # shutdown() joins every thread, so none outlives its run in practice.
        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def queue(self, maxsize: int) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._queues.append(q)
        return q

    def put(self, q: queue.Queue, item: object) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise StopPipeline

    def get(self, q: queue.Queue) -> object:
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        raise StopPipeline

    def shutdown(self, interrupt: Callable[[], None] | None = None) -> None:
        """Stop every stage, wake any stage blocked outside these queues, and join the threads.

        Items still queued are dropped, so the buffers they hold are freed.
        """
        self.stop.set()
        if interrupt is not None:
            try:
                interrupt()
            except Exception:  # the run already failed; the first error is the one to report
                log.debug("interrupting a stage failed", exc_info=True)
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("pipeline thread %s did not stop within %.0f s", thread.name, JOIN_TIMEOUT_S)
        if self._error is not None:
            # The error outlives the run (it is re-raised); its traceback must not keep the failed
            # stage's buffers alive. Clearing finished frames keeps the traceback printable.
            traceback.clear_frames(self._error.__traceback__)
        for q in self._queues:
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break


class Producer(Generic[T]):
    """Runs `source` in a crew thread; iterate over the Producer to get its items."""

    def __init__(self, crew: Crew, source: Callable[[], Iterable[T]], *, maxsize: int, name: str) -> None:
        self._crew = crew
        self._q = crew.queue(maxsize)

        def run() -> None:
            for item in source():
                crew.put(self._q, item)
            crew.put(self._q, _DONE)

        crew.start(run, name)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._crew.get(self._q)
            if item is _DONE:
                return
            yield item  # type: ignore[misc]


class Consumer(Generic[T]):
    """Feeds items to `sink` in a crew thread; `finish()` waits until it has taken them all."""

    def __init__(self, crew: Crew, sink: Callable[[T], None], *, maxsize: int, name: str) -> None:
        self._crew = crew
        self._q = crew.queue(maxsize)
        self._done = threading.Event()

        def run() -> None:
            while True:
                item = crew.get(self._q)
                if item is _DONE:
                    self._done.set()
                    return
                sink(item)  # type: ignore[arg-type]

        crew.start(run, name)

    def put(self, item: T) -> None:
        self._crew.put(self._q, item)

    def finish(self) -> None:
        self._crew.put(self._q, _DONE)
        while not self._done.wait(_POLL_S):
            if self._crew.stop.is_set():
                raise StopPipeline
