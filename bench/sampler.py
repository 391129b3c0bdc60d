"""Run ``rollout`` with a sampling profiler of every thread: where a process's threads spend
their time (``sys._current_frames`` every ``ROLLOUT_SAMPLE_S``), written as JSON to the file
``ROLLOUT_SAMPLE_OUT`` when the process ends.

    .venv/bin/python bench/sampler.py deploy -C DIR ...   (the same arguments as ``rollout``)

Each sample of a thread counts once for the innermost frame of the ``rollout`` package on its
stack (what rollout was doing) and once for the innermost frame of all (a database read, a
sleep, a lock), the sampler's own thread left out. Used for ``rollout deploy`` only: under
``rollout serve`` (uvicorn's event loop) walking the other threads' frames crashed CPython 3.11
once (a segfault in libpython), so the server's share is measured by its CPU seconds instead.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import sys
import threading
import time
from types import FrameType


def _where(frame: FrameType | None) -> tuple[str, str]:
    leaf = ""
    ours = ""
    while frame is not None:
        code = frame.f_code
        name = f"{os.path.basename(code.co_filename)}:{code.co_name}"
        if not leaf:
            leaf = name
        if not ours and "/rollout/" in code.co_filename:
            ours = f"{code.co_filename.split('/rollout/')[-1]}:{code.co_name}"
        frame = frame.f_back
    return ours or "(outside rollout)", leaf


def main() -> None:
    every = float(os.environ.get("ROLLOUT_SAMPLE_S", "0.01"))
    out = os.environ["ROLLOUT_SAMPLE_OUT"]
    ours: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    samples = [0]
    stop = threading.Event()

    def sample() -> None:
        me = threading.get_ident()
        written = time.monotonic()
        while not stop.wait(every):
            if time.monotonic() - written > 5.0:  # a process killed at the end still leaves its figures
                dump(final=False)
                written = time.monotonic()
            samples[0] += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                where, leaf = _where(frame)
                ours[where] += 1
                leaves[leaf] += 1

    def dump(final: bool = True) -> None:
        if final:
            stop.set()
        data = {
            "samples": samples[0],
            "every_s": every,
            "rollout": ours.most_common(40),
            "leaf": leaves.most_common(40),
        }
        with open(out + ".part", "w") as f:
            json.dump(data, f)
        os.replace(out + ".part", out)

    threading.Thread(target=sample, daemon=True, name="sampler").start()
    atexit.register(dump)
    from rollout.cli import main as rollout_main

    sys.argv = ["rollout", *sys.argv[1:]]
    rollout_main()


if __name__ == "__main__":
    main()
