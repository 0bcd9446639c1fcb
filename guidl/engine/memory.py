"""How much memory this process can still take: the one figure every check
uses (training's memory check, a bundle's expansion limit, an .npz
dataset's size check).

This module imports neither torch nor Qt.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

#: Where a container's cgroup (v2) memory files are: its own cgroup's, mounted at the root.
CGROUP = Path("/sys/fs/cgroup")


def physical_memory_bytes() -> int:
    """This machine's memory, the ceiling for any model guidl agrees to build."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        try:
            return int(psutil.virtual_memory().total)
        except (OSError, RuntimeError):
            return 16 * 2**30


def _cgroup_available(root: Path) -> int | None:
    """What a cgroup v2 memory limit leaves: ``memory.max`` less what the
    group uses, not counting its inactive file cache (``inactive_file`` of
    ``memory.stat``), which the kernel reclaims before it would kill anyone
    (as ``docker stats`` counts it). None without a limit."""
    try:
        limit = (root / "memory.max").read_text(encoding="ascii").strip()
        if limit == "max":
            return None
        current = int((root / "memory.current").read_text(encoding="ascii").strip())
        limit_bytes = int(limit)
    except (OSError, ValueError):
        return None
    reclaimable = 0
    try:
        for line in (root / "memory.stat").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == "inactive_file":
                reclaimable = int(value)
                break
    except (OSError, ValueError):
        pass  # no figure: count the whole of memory.current as used
    return max(0, limit_bytes - max(0, current - reclaimable))


def available_memory_bytes() -> int:
    """Memory this process can still take without swapping: what the system
    reports available (``MemAvailable`` on Linux, which counts the caches the
    kernel gives back), within the container's cgroup limit when it has one."""
    try:
        available = int(psutil.virtual_memory().available)
    except (OSError, RuntimeError):  # no figure from the system
        available = physical_memory_bytes()
    limited = _cgroup_available(CGROUP)
    return available if limited is None else min(available, limited)
