"""Kills a workflow from inside one of its Parquet writes, as a power loss would.

Python imports this module at start-up in every process whose PYTHONPATH holds this folder.
Where LLMENERGY_KILL_IN_WRITE names a folder, the first Parquet file written into it (by
polars, under whatever name: the output's or a temporary one) is cut to half its size, as if
the write had been interrupted, and the writer's whole process group, the workflow included,
is killed with SIGKILL before anything else happens: no rename, no clean-up, no handler.
LLMENERGY_KILL_MARKER names a file that records what was being written, so that a test can
tell this kill from any other end. Without LLMENERGY_KILL_IN_WRITE this module does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys

FOLDER = os.environ.get("LLMENERGY_KILL_IN_WRITE")
MARKER = os.environ.get("LLMENERGY_KILL_MARKER", os.devnull)


def _cut_and_die(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with open(MARKER, "w") as marker:
        marker.write(path)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _patch(frame_class: type) -> None:
    write_parquet = frame_class.write_parquet

    def interrupted_write_parquet(self, file, *args, **kwargs):
        result = write_parquet(self, file, *args, **kwargs)
        if isinstance(file, str | os.PathLike):
            path = os.path.abspath(file)
            if os.path.dirname(path) == os.path.abspath(FOLDER):
                _cut_and_die(path)
        return result

    frame_class.write_parquet = interrupted_write_parquet


class _PatchPolarsOnImport(importlib.abc.MetaPathFinder):
    """Patches polars.DataFrame.write_parquet once polars is imported (importing it here, in
    every process of the run, would slow them all down)."""

    def find_spec(self, name, path, target=None):
        if name != "polars":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module.DataFrame)

        spec.loader.exec_module = exec_and_patch
        return spec


if FOLDER:
    sys.meta_path.insert(0, _PatchPolarsOnImport())
