"""Where a sweep's work units run: this process, a local process pool, or Ray.

Every backend runs the same unit functions (:mod:`mtenv.tools.bench.units`) through
:func:`~mtenv.tools.bench.units.call` and yields ``(job, outcome)`` pairs as units finish, so
results are identical whichever runs them; only the order in which they come back differs.

* ``local`` with one worker: in this process, one unit after another (no pool).
* ``local`` with K > 1 workers: a :class:`~concurrent.futures.ProcessPoolExecutor` of K
  processes started by ``forkserver`` (``spawn`` where there is none), each with one torch
  intra-op thread (``MTENV_TORCH_THREADS`` overrides it) and Ctrl-C left to the parent.
* ``ray`` (the ``ray`` extra): connects to ``RAY_ADDRESS`` when it is set, after checking that
  the address answers, else starts a local instance of K CPUs; units are Ray tasks of one CPU.
  Every node must have the same mtenv installed (a unit checks its scenario's hash).

At most about two units per worker are in flight: a unit is submitted only when a slot frees,
so the ``skip`` predicate (cells that already failed) is asked as late as possible and an
interrupted sweep has little to cancel.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mtenv.tools.bench.units import call, init_worker, one_line
from mtenv.tools.cli_common import CliError

BACKENDS = ("local", "ray")
_IN_FLIGHT_PER_WORKER = 2
_CONNECT_TIMEOUT_S = 5.0

Outcome = dict[str, Any]


class Backend:
    """Runs units; subclasses say where. ``workers`` is how many run at once."""

    name = "base"

    def __init__(self, workers: int):
        self.workers = max(int(workers), 1)

    def describe(self) -> str:
        return f"{self.name}, {self.workers} worker(s)"

    def run(
        self,
        unit: Callable[[Any], Any],
        jobs: Iterable[Any],
        skip: Callable[[Any], bool] | None = None,
    ) -> Iterator[tuple[Any, Outcome]]:
        raise NotImplementedError

    def _stream(
        self,
        jobs: Iterable[Any],
        skip: Callable[[Any], bool] | None,
        pending: dict[Any, Any],
        submit: Callable[[Any], Any],
        finished: Callable[[dict[Any, Any]], Iterable[Any]],
        result: Callable[[Any], Outcome],
    ) -> Iterator[tuple[Any, Outcome]]:
        """Keep about two units per worker in flight (``pending``: handle → job), yielding
        ``(job, outcome)`` as they finish; ``submit`` starts a unit and returns its handle,
        ``finished`` waits for some of ``pending`` to finish, ``result`` reads one's outcome.
        A unit whose worker died yields a failed outcome instead."""
        todo = _unskipped(jobs, skip)
        limit = self.workers * _IN_FLIGHT_PER_WORKER

        def fill() -> None:
            while len(pending) < limit:
                job = next(todo, _END)
                if job is _END:
                    return
                pending[submit(job)] = job

        fill()
        while pending:
            for handle in finished(pending):
                job = pending.pop(handle)
                try:
                    outcome = result(handle)
                except Exception as exc:  # the worker died (killed, out of memory)
                    outcome = _lost(exc)
                yield job, outcome
            fill()

    def close(self, interrupted: bool = False) -> None:
        """Release the workers; ``interrupted``: stop running units now, waiting for none."""


class InProcess(Backend):
    """One unit after another in this process (``--workers 1``)."""

    name = "local"

    def describe(self) -> str:
        return "local, in this process"

    def run(self, unit, jobs, skip=None):  # type: ignore[no-untyped-def]
        for job in jobs:
            if skip is not None and skip(job):
                continue
            yield job, call(unit, job)


class LocalPool(Backend):
    """A process pool on this machine."""

    name = "local"

    def __init__(self, workers: int):
        super().__init__(workers)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            if context.get_start_method() == "forkserver":
                # Workers fork from a server that has imported torch and mtenv once.
                context.set_forkserver_preload(["mtenv.tools.bench.units"])
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=init_worker
            )
        return self._pool

    def run(self, unit, jobs, skip=None):  # type: ignore[no-untyped-def]
        def submit(job: Any) -> Any:
            try:
                return self._executor().submit(call, unit, job)
            except BrokenProcessPool:  # a worker died: start a new pool
                self.close(interrupted=True)
                return self._executor().submit(call, unit, job)

        return self._stream(
            jobs,
            skip,
            {},
            submit,
            lambda pending: wait(pending, return_when=FIRST_COMPLETED)[0],
            lambda future: future.result(),
        )

    def close(self, interrupted: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if interrupted:
            terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
            if terminate is not None:
                terminate()
            else:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            pool.shutdown(wait=True)


class RayBackend(Backend):
    """Ray tasks: on the cluster at ``RAY_ADDRESS``, or on a local instance started here."""

    name = "ray"

    def __init__(self, workers: int):
        super().__init__(workers)
        import ray  # the ray extra; a missing one is reported as such by the CLI

        self._ray = ray
        self._started = False
        self._in_flight: dict[Any, Any] = {}
        address = os.environ.get("RAY_ADDRESS", "").strip()
        self.address = address or None
        if ray.is_initialized():
            pass  # a caller's session (tests, notebooks): used as it is, left running
        elif address:
            check_reachable(address)
            self._init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            self._started = True
        else:
            self._init(
                num_cpus=self.workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", self.workers))
        self.workers = max(cpus, 1)
        self._remote = ray.remote(num_cpus=1)(call)

    def _init(self, **kwargs: Any) -> None:
        try:
            self._ray.init(**kwargs)
        except Exception as exc:
            where = f"RAY_ADDRESS={self.address}" if self.address else "a local Ray instance"
            raise CliError(f"--backend ray: {where}: {one_line(exc)}") from None

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else "a local instance"
        return f"ray, {where}, {self.workers} CPU(s)"

    def run(self, unit, jobs, skip=None):  # type: ignore[no-untyped-def]
        ray = self._ray
        self._in_flight = {}
        return self._stream(
            jobs,
            skip,
            self._in_flight,
            lambda job: self._remote.remote(unit, job),
            lambda pending: ray.wait(list(pending), num_returns=1)[0],
            ray.get,
        )

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            for ref in list(self._in_flight):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # already finished, or the session is gone
                    continue
        self._in_flight = {}
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def runs_in_process(name: str, workers: int | None) -> bool:
    """Whether ``--backend NAME --workers K`` runs its units in this process."""
    return name == "local" and (workers if workers is not None else (os.cpu_count() or 1)) == 1


def make_backend(name: str, workers: int | None) -> Backend:
    """The backend ``--backend NAME --workers K`` asks for (K defaults to the CPU count);
    connecting to Ray happens here, before the sweep writes anything."""
    if name not in BACKENDS:
        raise CliError(f"--backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise CliError(f"--workers: expected a positive integer, got {count}")
    if name == "ray":
        return RayBackend(count)
    return InProcess(1) if runs_in_process(name, count) else LocalPool(count)


def check_reachable(address: str) -> None:
    """Fail in a few seconds, with one line, when nothing answers at a Ray address
    (``HOST:PORT``, ``ray://HOST:PORT``); ``ray.init`` itself would retry for minutes.
    ``auto`` and ``local`` are left to Ray."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].strip("/")
    host, sep, port_text = hostport.rpartition(":")
    if not sep:
        host, port_text = hostport, "6379"
    try:
        port = int(port_text)
    except ValueError:
        raise CliError(f"RAY_ADDRESS={address!r}: expected HOST:PORT or ray://HOST:PORT") from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CliError(
            f"RAY_ADDRESS={address}: no Ray cluster answers there ({reason}); start one with "
            "`ray start --head`, or unset RAY_ADDRESS to start a local instance"
        ) from None


_END = object()


def _unskipped(jobs: Iterable[Any], skip: Callable[[Any], bool] | None) -> Iterator[Any]:
    """The jobs to run, ``skip`` asked of each only when it is about to be submitted."""
    return (job for job in jobs if skip is None or not skip(job))


def _lost(exc: BaseException) -> Outcome:
    """The outcome of a unit whose worker died before it could report one."""
    return {"ok": False, "error": one_line(exc), "traceback": traceback.format_exc()}
