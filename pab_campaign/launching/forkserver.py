"""A warm fork server for the local launcher: one process imports torch & co. once, and every run
of a sweep is forked from it instead of paying a fresh interpreter's ~3 s of imports.

    python -m pab_campaign.launching.forkserver serve NAME --preload torch,pab_campaign.training.run   # the server
    python -m pab_campaign.launching.forkserver connect NAME -u -m MODULE ARGS...            # one job

`connect` stands in for `python -u -m MODULE ARGS...` (submitit's local task command): it hands
its argv, environment, working directory, sys.path and standard streams to the server, which
forks a child that runs MODULE as `__main__` exactly there. The client forwards the signals it
gets (submitit's SIGUSR2 preemption, SIGTERM, SIGINT, ...) to that child and exits with the
child's exit status (re-raising the signal when the child died of one). A child whose client
died (SIGKILL) kills itself. When the server cannot be reached, or the arguments are not of
that form, `connect` runs the same command in a fresh interpreter instead, so a job always runs.

NAME is a Linux abstract Unix socket (nothing on disk to clean up). The server prints `ready` on
its standard output once it accepts jobs, and ends when its standard input closes (the launcher's
lifeline), after its last child.
A child ends like a multiprocessing child: logging shut down, streams flushed, `os._exit`.
Only the standard library is imported at module level: `connect` must start in milliseconds.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import logging
import os
import random
import runpy
import select
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
MESSAGE_BYTES = 1 << 20
STREAMS = (0, 1, 2)
READY = "ready"


def address(name: str) -> str:
    """The abstract Unix socket address of the server called `name`."""
    return "\0" + name


@dataclass
class Job:
    """What a forked child runs: the client's request, its connection and its standard streams."""

    connection: socket.socket
    request: dict
    streams: list[int]


def _send(connection: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):  # the client is gone; nobody is left to tell
        connection.send(json.dumps(message).encode())


# ---- server -------------------------------------------------------------------------------------
def serve(name: str, preload: list[str]) -> Job | None:
    """Import `preload`, then fork a child per client on the socket called `name` until standard
    input closes and every child has ended. Returns None in the server, a Job in each child."""
    for module in preload:
        try:
            importlib.import_module(module)
        except Exception as exc:
            print(f"pab_campaign.launching.forkserver: not preloaded {module}: {exc}", file=sys.stderr)
    gc.freeze()  # the preloaded objects stay out of every collection, so children do not copy their pages
    if threading.active_count() > 1:
        print("pab_campaign.launching.forkserver: preloading started threads; forking is unsafe, not serving",
              file=sys.stderr)
        return None
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs themselves; serve them out
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address(name))
    listener.listen(64)
    print(READY, flush=True)
    children: dict[int, socket.socket] = {}
    accepting = True
    while accepting or children:
        watched = [wake_read] + ([listener, sys.stdin.fileno()] if accepting else [])
        ready, _, _ = select.select(watched, [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
        if accepting and sys.stdin.fileno() in ready and not os.read(sys.stdin.fileno(), 4096):
            accepting = False
            listener.close()
        if accepting and listener in ready:
            job = _accept(listener, children)
            if job is not None:
                _leave_server(listener, children, (wake_read, wake_write, sys.stdin.fileno()))
                return job
        _reap(children)
    return None


def _accept(listener: socket.socket, children: dict[int, socket.socket]) -> Job | None:
    """Take one request and fork; returns the Job in the child, None in the server."""
    connection, _ = listener.accept()
    try:
        data, streams, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, len(STREAMS))
        request = json.loads(data)
    except (OSError, ValueError):
        connection.close()
        return None
    pid = os.fork()
    if pid == 0:
        return Job(connection, request, streams)
    for fd in streams:
        os.close(fd)
    children[pid] = connection
    _send(connection, {"pid": pid})
    return None


def _leave_server(listener: socket.socket, children: dict[int, socket.socket], fds: tuple[int, ...]) -> None:
    """In a freshly forked child: drop the server's sockets, descriptors and signal handling."""
    listener.close()
    for connection in children.values():
        connection.close()
    for fd in fds:
        os.close(fd)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _reap(children: dict[int, socket.socket]) -> None:
    """Tell each ended child's client its exit status (negative: killed by that signal)."""
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            connection = children.pop(pid)
            _send(connection, {"exit": os.waitstatus_to_exitcode(status)})
            connection.close()


# ---- child --------------------------------------------------------------------------------------
def run_job(job: Job) -> int:
    """Become the client's `python -u -m MODULE ARGS...`: its streams, environment, working
    directory and sys.path; returns the exit code the interpreter would have had."""
    for target, fd in zip(STREAMS, job.streams):
        os.dup2(fd, target)
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        assert isinstance(stream, io.TextIOWrapper)  # the standard streams of a fresh child
        stream.reconfigure(line_buffering=True, write_through=True)
    request = job.request
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[:] = request["sys_path"]
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if "torch" in sys.modules and threads.isdigit():
        sys.modules["torch"].set_num_threads(int(threads))
    threading.Thread(target=_die_with_client, args=(job.connection,), daemon=True).start()
    sys.argv = [request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _die_with_client(connection: socket.socket) -> None:
    """Block until the client's end closes; the client only closes after this child has ended,
    so an earlier close means the client was killed: take the job down with it."""
    try:
        while connection.recv(16):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


# ---- client -------------------------------------------------------------------------------------
def module_request(args: list[str]) -> dict | None:
    """The request for `python [-u] -m MODULE ARGS...`, or None for any other command line."""
    flags = list(args)
    while flags and flags[0] == "-u":
        flags.pop(0)
    if len(flags) < 2 or flags[0] != "-m":
        return None
    return {"module": flags[1], "args": flags[2:], "env": dict(os.environ), "cwd": os.getcwd(),
            "sys_path": [str(Path(p).resolve()) if p else os.getcwd() for p in sys.path]}


def connect(name: str, args: list[str]) -> NoReturn:
    """Run `python ARGS` as a child of the server called `name` and exit as it exits."""
    request = module_request(args)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        if request is None:
            raise OSError("not a -m command line")
        client.connect(address(name))
        socket.send_fds(client, [json.dumps(request).encode()], list(STREAMS))
        pid = json.loads(client.recv(MESSAGE_BYTES))["pid"]
    except (OSError, ValueError, KeyError):
        client.close()
        os.execv(sys.executable, [sys.executable, *args])
    for number in FORWARDED_SIGNALS:
        signal.signal(number, lambda received, _frame: _forward(pid, received))
    reply = client.recv(MESSAGE_BYTES)
    if not reply:
        while _alive(pid):
            time.sleep(0.2)
        sys.exit(f"pab_campaign.launching.forkserver: lost the server; the exit status of job process {pid} is unknown")
    code = json.loads(reply)["exit"]
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code if code >= 0 else 128 - code)


def _forward(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pab_campaign.launching.forkserver",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve", help="preload modules and fork jobs as NAME until stdin closes")
    server.add_argument("name")
    server.add_argument("--preload", default="", help="comma-separated modules to import once")
    client = commands.add_parser("connect", help="run `python ARGS...` as a child of the server NAME")
    client.add_argument("name")
    client.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    if options.command == "connect":
        connect(options.name, options.args)
    job = serve(options.name, [m for m in options.preload.split(",") if m])
    if job is not None:
        code = run_job(job)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)  # as multiprocessing's children do: tearing down the inherited heap takes ~0.7 s


if __name__ == "__main__":
    main()
