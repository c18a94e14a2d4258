"""What the benchmark drivers share: running work inside a network namespace without the driver ever
leaving its own, and the machine's load (other work on a 2-core machine shows in every figure)."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    pass


def enter_netns(name: str):
    """setns() this (single-threaded) process into netns `name`, through libc: os.setns needs Python 3.12."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def in_netns(name: str, work, timeout: float = 10.0, label: str = "bench"):
    """Runs `work()` in a forked child inside netns `name` (the driver never changes namespace) and
    returns its JSON-serialisable result; raises BenchError on failure or after `timeout` seconds."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        code = 1
        try:
            enter_netns(name)
            data = json.dumps(work()).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
            code = 0
        except BaseException as error:  # reported by the parent
            os.write(2, f"{label}: in {name}: {error!r}\n".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(child, signal.SIGKILL)
                raise BenchError(f"work in {name} took longer than {timeout:g} s")
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(child, 0)
    if status != 0:
        raise BenchError(f"work in {name} failed (see above)")
    return json.loads(b"".join(chunks))


def load_average() -> str:
    """1/5/15-minute load."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"
