"""Liveness of a run's owner by process identity (pid + start time): dead, zombie and reused pids are gone."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil

from persist.tracking.runs import OWNER, _owner_gone

HOST = socket.gethostname()


def owned_by(tag: str) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(tags={"persist.owner": tag}))


def identity(pid: int) -> str:
    return f"{HOST}:{pid}:{psutil.Process(pid).create_time():.2f}"


def test_this_process_and_a_live_child_own_their_runs():
    assert not _owner_gone(owned_by(OWNER))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not _owner_gone(owned_by(identity(child.pid)))
        assert not _owner_gone(owned_by(f"{HOST}:{child.pid}"))  # tags written before start times: pid only
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_is_not_the_owner():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = psutil.Process(child.pid).create_time()
        assert _owner_gone(owned_by(f"{HOST}:{child.pid}:{started - 5:.2f}"))  # same pid, another process
    finally:
        child.kill()
        child.wait()


def test_a_zombie_and_a_reaped_process_are_gone():
    child = subprocess.Popen(["true"])
    tag = owned_by(f"{HOST}:{child.pid}:{psutil.Process(child.pid).create_time():.2f}")
    deadline = time.time() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.01)
    assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped: kill(pid, 0) works
    assert _owner_gone(tag)
    child.wait()
    assert _owner_gone(tag)


def test_another_hosts_run_and_malformed_tags_are_left_alone():
    assert not _owner_gone(owned_by(f"elsewhere-{HOST}:1:0.00"))
    assert not _owner_gone(owned_by("garbage"))
    assert not _owner_gone(SimpleNamespace(data=SimpleNamespace(tags={})))
