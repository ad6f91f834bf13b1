"""The SQLite writer: a process of its own that makes every write of the service.

SQLite takes one writer at a time, and the service has one: every write (reports, updates,
the outbox, devices ...) goes through this process. Writes that arrive while it commits go
into its next transaction together (group commit), each answered only after that commit; if
a shared transaction fails, each of its writes is committed alone, so that a bad one fails
by itself. A process rather than a thread: a writer thread shares the interpreter lock with
the event loop, so the two took turns on one core (and the thread waited for the lock after
every SQLite statement); in a process of its own the writer has the second core.

The parent talks to it over a socket pair with length-prefixed pickles. A job is a report
write in its wire form (plain tuples, see `writer_wire.encode_write`), or a plain function of a
connection (a `functools.partial` of a module-level function), whose result comes back.
The process ends when the parent closes the socket or goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from dispatcher import logs
from dispatcher.incidents import MergeRule
from dispatcher.store.commit_policy import Done, together_or_alone
from dispatcher.store.dbapi import LiteSql
from dispatcher.store.incident_memory import IncidentMemory
from dispatcher.store.report_writer import ReportWriter
from dispatcher.store.writer_wire import decode_write

log = logging.getLogger("dispatcher.store")

REPORTS = "reports"  # a job: writer_wire.encode_write(...), answered as ReportWriter.save_wire
CALL = "call"  # a job: a picklable fn(conn), answered with what it returns
_HEADER = struct.Struct("!I")
_START_TIMEOUT = 60.0  # seconds for the process to open the database
_CLOSE_TIMEOUT = 30.0  # seconds for it to answer what it was sent, at close


class WriterGone(RuntimeError):
    """The writer process ended; what it had not answered is not known to be written."""


class WriterProcess:
    """The parent's end: starts the process on first use, sends jobs, awaits answers."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.synchronous = synchronous
        self.merge = MergeRule()  # the store sets its own before the first write
        self._process: multiprocessing.process.BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = 0
        self._outgoing: list[bytes] = []
        self._starting = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The writer process's id, once started."""
        return self._process.pid if self._process is not None else None

    async def call(self, kind: str, job: Any) -> Any:
        """Run a job in the writer's next transaction; its result once committed."""
        writer = await self._started()
        self._ids += 1
        call_id = self._ids
        frame = _frame((call_id, kind, job))  # a job that does not pickle fails here
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting[call_id] = future
        # The calls made in one turn of the event loop go out in one write.
        if not self._outgoing:
            loop.call_soon(self._send, writer)
        self._outgoing.append(frame)
        return await future

    def _send(self, writer: asyncio.StreamWriter) -> None:
        frames, self._outgoing = self._outgoing, []
        if not writer.is_closing():
            writer.write(b"".join(frames))

    async def _started(self) -> asyncio.StreamWriter:
        async with self._starting:
            if self._closed:
                raise WriterGone("the store is closed")
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            if self._process is not None:
                await asyncio.to_thread(self._process.join, 5)  # for its exit code
                if self._process.is_alive():  # its socket broke, yet it runs: no second writer
                    self._process.kill()
                    await asyncio.to_thread(self._process.join, 5)
                log.error("the writer process ended (exit code %s); starting it again",
                          self._process.exitcode)  # fmt: skip
            ours, theirs = socket.socketpair()
            process = _context().Process(
                target=serve,
                args=(theirs, self.url, self.synchronous, self.merge, *logs.current()),
                name="dispatcher-writer",
                daemon=True,
            )
            await asyncio.to_thread(process.start)
            theirs.close()
            reader, writer = await asyncio.open_connection(sock=ours)
            try:
                ready = await asyncio.wait_for(_read_frame(reader), _START_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError) as exc:
                writer.close()
                await asyncio.to_thread(process.join, 5)
                raise WriterGone("the writer process did not start") from exc
            if not ready[0]:
                writer.close()
                await asyncio.to_thread(process.join, 5)
                raise ready[1]
            self._process, self._writer = process, writer
            self._replies = asyncio.create_task(self._read_replies(reader))
            return writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        frames = _FrameBuffer()
        try:
            while chunk := await reader.read(1 << 20):
                # Every answer that has arrived, taken apart at once.
                for call_id, ok, value in frames.feed(chunk):
                    future = self._waiting.pop(call_id, None)
                    if future is None or future.done():  # the caller went away
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        except ConnectionError:
            pass
        finally:
            if self._writer is not None:
                self._writer.close()
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(WriterGone("the writer process ended"))

    async def close(self) -> None:
        """Let the process answer what it was sent, then end it; later writes are refused."""
        async with self._starting:  # a write that is starting the process goes first
            self._closed = True
        if self._writer is None:
            return
        if self._waiting:
            await asyncio.wait(list(self._waiting.values()), timeout=_CLOSE_TIMEOUT)
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        if self._replies is not None:
            await self._replies
        if self._process is not None:
            await asyncio.to_thread(self._process.join, _CLOSE_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()


_CONTEXT: Any = None


def _context() -> Any:
    """Processes are forked from a small server process that imported this module once
    (cheap to start, and free of the parent's threads)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload([__name__])
    return _CONTEXT


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own child's


# --- the process ------------------------------------------------------------------------


def serve(
    sock: socket.socket,
    url: str,
    synchronous: str,
    merge: MergeRule,
    log_format: logs.Format = "plain",
    log_level: str = "INFO",
) -> None:
    """The writer process: open the database, then commit what comes until the socket
    closes. It logs as the parent does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logs.configure(log_format, log_level)
    from dispatcher.store import db

    try:
        engine = db.create_sync_writer(url, synchronous)
        with engine.connect():
            pass  # opens the file and sets the pragmas: a bad path fails here, not later
    except Exception as exc:
        sock.sendall(_frame((False, _sendable(exc))))
        return
    sock.sendall(_frame((True, os.getpid())))
    # What was imported and opened lives as long as the process: keep full collections of
    # the cyclic GC from walking it again and again (as `serve` does in the parent).
    gc.freeze()
    committer = Committer(engine, merge)
    frames = _Frames(sock)
    try:
        while (calls := frames.read()) is not None:
            answers = committer.run([(kind, job) for _, kind, job in calls])
            sock.sendall(
                b"".join(
                    _answer(call_id, ok, value)
                    for (call_id, _, _), (ok, value) in zip(calls, answers, strict=True)
                )
            )
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent went away
    finally:
        committer.close()
        engine.dispose()


class _FrameBuffer:
    """Bytes in, complete frames out."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Any]:
        self.buffer += chunk
        return self.complete()

    def complete(self) -> list[Any]:
        messages = []
        view = memoryview(self.buffer)
        at = 0
        while len(view) - at >= _HEADER.size:
            (size,) = _HEADER.unpack_from(view, at)
            if len(view) - at - _HEADER.size < size:
                break
            start = at + _HEADER.size
            messages.append(pickle.loads(view[start : start + size]))  # noqa: S301 - our own
            at = start + size
        view.release()
        del self.buffer[:at]
        return messages


class _Frames:
    """Reads frames from a blocking socket: at least one, then every one already there."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = _FrameBuffer()

    def read(self) -> list[Any] | None:
        """The calls that have arrived (waiting for the first); None once the socket closes."""
        calls: list[Any] = []
        while True:
            calls.extend(self.frames.complete())
            ready, _, _ = select.select([self.sock], [], [], None if not calls else 0)
            if not ready:
                return calls
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return calls or None
            self.frames.buffer += chunk


def _answer(call_id: int, ok: bool, value: Any) -> bytes:
    try:
        return _frame((call_id, ok, value))
    except Exception as exc:  # committed, but what it returned does not pickle
        return _frame((call_id, False, RuntimeError(f"the write's result cannot be sent: {exc}")))


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - round trip of our own
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class Committer:
    """Commits jobs: as many as came together in one transaction, else each alone."""

    def __init__(self, engine: Engine, merge: MergeRule) -> None:
        self.engine = engine
        self.merge = merge
        self.memory = IncidentMemory(merge)
        # Open groups as the last report write left them: valid until another write (a
        # flush, an acknowledgement ...) may have changed a group, or a transaction failed.
        self.open_groups: dict[Any, tuple[Any, ...]] = {}
        self._targets: dict[tuple[Any, ...], Any] = {}  # decoded group targets, by wire form
        self._conn: Connection | None = None

    def run(self, jobs: Sequence[tuple[str, Any]]) -> list[tuple[bool, Any]]:
        # Together in one transaction, else each alone (commit_policy), so that a bad write
        # fails by itself and the others still get their answer.
        return [
            (True, outcome.value)
            if isinstance(outcome, Done)
            else (False, _sendable(outcome.error))
            for outcome in together_or_alone(jobs, self._commit)
        ]

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _commit(self, jobs: Sequence[tuple[str, Any]]) -> list[Any]:
        """One transaction for `jobs`. Consecutive report writes are decided together and
        their rows written together."""
        out: list[Any] = []
        writer: ReportWriter | None = None
        conn = self._connection()
        try:
            with conn.begin():
                i = 0
                while i < len(jobs):
                    kind, job = jobs[i]
                    if kind == CALL:
                        self.open_groups.clear()
                        out.append(_call(job, conn))
                        i += 1
                        continue
                    run = []
                    while i < len(jobs) and jobs[i][0] == REPORTS:
                        run.append(decode_write(jobs[i][1], self._targets))
                        i += 1
                    if writer is None:
                        sql = LiteSql(conn)
                        memory = self.memory.sync(sql, max(w.now for w in run))
                        if self.memory.reloaded:
                            self.open_groups.clear()
                        writer = ReportWriter(sql, self.merge, memory, self.open_groups)
                    out.extend(writer.save_wire(run))
        except BaseException:
            self.open_groups.clear()
            if writer is not None:
                self.memory.forget()  # its reads may have seen what was rolled back
            raise
        return out


def _call(fn: Callable[[Connection], Any], conn: Connection) -> Any:
    return fn(conn)
