"""Bounded, exception-carrying hand-offs between pipeline stages.

Each stage runs in its own thread so decoding, the network and encoding overlap; the
queues between them are small, so memory does not grow with the length of the video.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class StopPipeline(Exception):
    """Raised inside a stage when another stage has failed and everything should stop."""


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise StopPipeline
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


class Producer(Generic[T]):
    """Runs `source` in a background thread; iterate over the Producer to get its items."""

    def __init__(self, source: Callable[[], Iterable[T]], *, maxsize: int, name: str) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Callable[[], Iterable[T]]) -> None:
        try:
            for item in source():
                _put(self._q, item, self._stop)
            _put(self._q, _DONE, self._stop)
        except StopPipeline:
            pass
        except BaseException as exc:  # handed to the consumer, which re-raises it
            try:
                _put(self._q, _Failure(exc), self._stop)
            except StopPipeline:
                pass

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Consumer(Generic[T]):
    """Feeds items to `sink` in a background thread; `finish()` waits and re-raises its error."""

    def __init__(self, sink: Callable[[T], None], *, maxsize: int, name: str) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sink,), name=name, daemon=True)
        self._thread.start()

    def _run(self, sink: Callable[[T], None]) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _DONE:
                    return
                sink(item)
        except BaseException as exc:
            self._error = exc
            self._stop.set()

    def put(self, item: T) -> None:
        try:
            _put(self._q, item, self._stop)
        except StopPipeline:
            self._raise_error()

    def finish(self) -> None:
        try:
            _put(self._q, _DONE, self._stop)
        except StopPipeline:
            pass
        self._thread.join()
        self._raise_error()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
