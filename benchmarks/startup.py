"""Start-up: from process start to the main window shown, and to PyTorch ready.

Starts ``python -m guidl`` (the real entry point, the MNIST CNN example
project) with ``GUIDL_STARTUP_REPORT`` set: the app writes when its window
was first painted and when the background import of torch finished, then
quits. Also times ``guidl --help`` and ``guidl --version``. Settings and
autosaves go to a temporary folder, so nothing of yours is touched.

Uses the display in ``DISPLAY`` (e.g. Xvfb) or, without one, Qt's offscreen
platform. Figures only; it never fails on time.

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def window_start(env: dict[str, str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "startup.json"
        env = {**env, "GUIDL_STARTUP_REPORT": str(report), "XDG_CONFIG_HOME": folder,
               "XDG_DATA_HOME": folder, "XDG_CACHE_HOME": env.get("XDG_CACHE_HOME", folder)}
        started = time.time()
        subprocess.run([sys.executable, "-m", "guidl"], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stamps = json.loads(report.read_text())
        return stamps["shown"] - started, stamps["engine_ready"] - started


def command(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "guidl", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    platform = env.get("QT_QPA_PLATFORM") or ("xcb" if env.get("DISPLAY") else "default")
    window_start(env)  # warm the file cache (and the MNIST sample cache) once
    shown, ready = zip(*(window_start(env) for _ in range(args.runs)))
    help_s = [command(["--help"], env) for _ in range(args.runs)]
    version_s = [command(["--version"], env) for _ in range(args.runs)]
    print(f"start-up over {args.runs} runs (Qt platform {platform}); median (best):")
    print(f"  window shown       {statistics.median(shown):6.2f} s  ({min(shown):.2f} s)  goal <= 1.5 s")
    print(f"  PyTorch ready      {statistics.median(ready):6.2f} s  ({min(ready):.2f} s)  "
          "(in the background, window usable meanwhile)")
    print(f"  guidl --help       {statistics.median(help_s):6.2f} s  ({min(help_s):.2f} s)  goal <= 0.3 s")
    print(f"  guidl --version    {statistics.median(version_s):6.2f} s  ({min(version_s):.2f} s)  goal <= 0.3 s")


if __name__ == "__main__":
    main()
