"""The warm fork server with real processes: a job forked from it sees the client's argv,
environment, working directory and streams; exit codes and signals travel both ways; a job dies
with its client; without a server the client runs the command in a fresh interpreter."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, wait_for

JOB = '''
import os, signal, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("JOB_VALUE"), "pid", os.getpid(), flush=True)
print("to stderr", file=sys.stderr, flush=True)
action = sys.argv[1]
if action == "wait-usr2":
    signal.signal(signal.SIGUSR2, lambda *_: sys.exit(7))
    print("waiting", flush=True)
    time.sleep(60)
elif action == "sleep":
    print("waiting", flush=True)
    time.sleep(60)
elif action == "die-by-term":
    os.kill(os.getpid(), signal.SIGTERM)
elif action == "raise":
    raise RuntimeError("the job failed")
sys.exit(int(action))
'''


@pytest.fixture
def job_env(tmp_path) -> dict[str, str]:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "forkjob.py").write_text(JOB)
    return {**os.environ, "JOB_VALUE": "from-the-client",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path / "lib")])}


@pytest.fixture
def server(job_env):
    name = f"pab-forkserver-test-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen([sys.executable, "-m", "pab_campaign.launching.forkserver", "serve", name,
                                "--preload", "json,not_a_module_anywhere"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=job_env, cwd=REPO, text=True)
    assert process.stdout.readline() == "ready\n", "the fork server did not start"
    yield name, process
    process.stdin.close()
    process.wait(timeout=30)


def client(name: str, workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    workdir.mkdir(exist_ok=True)
    with open(workdir / "out", "w") as out, open(workdir / "err", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "pab_campaign.launching.forkserver", "connect", name, *args],
                                stdout=out, stderr=err, env=env, cwd=workdir)


def job_pid(workdir: Path) -> int:
    wait_for(lambda: "waiting" in (workdir / "out").read_text(), 30, "the job to start", poll=0.05)
    return int((workdir / "out").read_text().split("pid ")[1].split()[0])


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie awaiting its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while being read
        return False
    return state != "Z"


def test_job_runs_where_and_as_the_client_asked(server, tmp_path, job_env):
    name, process = server
    run = client(name, tmp_path / "work", job_env, "-u", "-m", "forkjob", "3")
    assert run.wait(timeout=30) == 3
    out = (tmp_path / "work" / "out").read_text()
    assert f"argv ['3'] cwd {tmp_path / 'work'} env from-the-client" in out
    assert int(out.split("pid ")[1]) not in (run.pid, process.pid)
    assert (tmp_path / "work" / "err").read_text() == "to stderr\n"
    assert "not preloaded not_a_module_anywhere" in process.stderr.readline()


def test_uncaught_exception_prints_its_traceback_and_exits_1(server, tmp_path, job_env):
    run = client(server[0], tmp_path / "work", job_env, "-m", "forkjob", "raise")
    assert run.wait(timeout=30) == 1
    err = (tmp_path / "work" / "err").read_text()
    assert "Traceback" in err and "RuntimeError: the job failed" in err


def test_signals_reach_the_job_and_its_death_by_signal_reaches_the_client(server, tmp_path, job_env):
    run = client(server[0], tmp_path / "usr2", job_env, "-m", "forkjob", "wait-usr2")
    job_pid(tmp_path / "usr2")
    run.send_signal(signal.SIGUSR2)
    assert run.wait(timeout=30) == 7
    killed = client(server[0], tmp_path / "term", job_env, "-m", "forkjob", "die-by-term")
    assert killed.wait(timeout=30) == -signal.SIGTERM


def test_a_job_dies_with_its_killed_client(server, tmp_path, job_env):
    run = client(server[0], tmp_path / "work", job_env, "-m", "forkjob", "sleep")
    pid = job_pid(tmp_path / "work")
    run.kill()
    run.wait(timeout=30)
    wait_for(lambda: not alive(pid), 10, "the job to die with its client", poll=0.05)


def test_server_ends_after_its_last_job_once_its_lifeline_closes(server, tmp_path, job_env):
    name, process = server
    run = client(name, tmp_path / "work", job_env, "-m", "forkjob", "wait-usr2")
    job_pid(tmp_path / "work")
    process.stdin.close()
    time.sleep(0.5)
    assert process.poll() is None, "the server left before its job ended"
    run.send_signal(signal.SIGUSR2)
    assert run.wait(timeout=30) == 7
    assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("args", [["-m", "forkjob", "5"], ["-c", "import sys; sys.exit(5)"]])
def test_without_a_server_or_a_module_the_client_runs_a_fresh_python(tmp_path, job_env, args):
    run = client(f"pab-forkserver-nobody-{os.getpid()}", tmp_path / "work", job_env, *args)
    assert run.wait(timeout=60) == 5
