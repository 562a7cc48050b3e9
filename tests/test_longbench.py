"""LongBench (read from an archive in its data.zip format, built here) and the offline
stand-in generated from the standard library."""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from llmenergy import configuration, datasets, workloads

from conftest import load_tiny_config, snakemake


def longbench_row(task: str, index: int, rng: random.Random) -> dict[str, Any]:
    lines = [f"    value_{index}_{i} = compute({i}, {rng.randint(0, 99)})\n" for i in range(60)]
    context = f"# {task} sample {index}\ndef sample_{index}():\n" + "".join(lines)
    return {
        "input": f"# path: src/module_{index}.py\n" if task == "repobench-p" else "",
        "context": context,
        "answers": [f"    return value_{index}_59"],
        "length": len(context.split()),
        "dataset": task,
        "language": "python",
        "all_classes": None,
        "_id": hashlib.sha256(f"{task}{index}".encode()).hexdigest()[:48],
    }


def build_archive(path: Path, counts: dict[str, int]) -> Path:
    """A LongBench-style data.zip: data/<task>.jsonl, one JSON object per line."""
    rng = random.Random(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for task, count in counts.items():
            rows = [longbench_row(task, index, rng) for index in range(count)]
            text = "".join(json.dumps(row) + "\n" for row in rows)
            archive.writestr(f"data/{task}.jsonl", text)
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return build_archive(tmp_path / "data.zip", {"lcc": 3, "repobench-p": 2, "qasper": 2})


def test_load_longbench_takes_tasks_in_turn(archive: Path) -> None:
    rows = datasets.load_longbench(archive, ["lcc", "repobench-p"])
    assert [row["task_id"] for row in rows] == [
        "lcc/0",
        "repobench-p/0",
        "lcc/1",
        "repobench-p/1",
        "lcc/2",
    ]
    assert all(row["dataset"] == row["task_id"].split("/")[0] for row in rows)
    assert rows[1]["input"].startswith("# path:")


def test_load_longbench_one_subset(archive: Path) -> None:
    rows = datasets.load(archive, {"format": "longbench", "subsets": ["repobench-p"]})
    assert [row["task_id"] for row in rows] == ["repobench-p/0", "repobench-p/1"]


def test_load_longbench_missing_task_and_bad_rows(tmp_path: Path) -> None:
    only_lcc = build_archive(tmp_path / "lcc.zip", {"lcc": 1})
    with pytest.raises(datasets.DatasetError, match=r"repobench-p\.jsonl"):
        datasets.load_longbench(only_lcc, ["lcc", "repobench-p"])
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("data/lcc.jsonl", json.dumps({"context": "x", "answers": []}) + "\n")
    with pytest.raises(datasets.DatasetError, match="lacks"):
        datasets.load_longbench(bad, ["lcc"])


def test_fetch_file_source_checks_sha256(archive: Path, tmp_path: Path) -> None:
    digest = datasets.sha256_file(archive)
    spec = {"format": "longbench", "source": {"kind": "file", "path": str(archive)}}
    raw, manifest = tmp_path / "out" / "raw", tmp_path / "out" / "manifest.json"
    datasets.fetch("longbench", {**spec, "sha256": digest}, raw, manifest)
    assert raw.read_bytes() == archive.read_bytes()
    assert json.loads(manifest.read_text())["sha256"] == digest
    raw.unlink()
    with pytest.raises(datasets.DatasetError, match="refusing"):
        datasets.fetch("longbench", {**spec, "sha256": "f" * 64}, raw, manifest)
    assert not raw.exists()


def test_longbench_workload_uses_longbench_prompts(archive: Path) -> None:
    rows = datasets.load_longbench(archive, ["lcc", "repobench-p"])
    table = workloads.build(rows, "longbench-cu", {"limit": 2}, "longbench")
    lcc, repobench = table.to_dicts()
    assert lcc["prompt"] == (
        f"Please complete the code given below. \n{rows[0]['context']}Next line of code:\n"
    )
    assert repobench["prompt"] == (
        "Please complete the code given below. \n"
        f"{rows[1]['context']}{rows[1]['input']}Next line of code:\n"
    )
    assert lcc["prompt_chat"] == lcc["prompt_completion"] == lcc["prompt"]
    assert lcc["scorer"] == "code_sim" and lcc["benchmark"] == "longbench"
    assert lcc["answers"] == rows[0]["answers"]
    assert lcc["shots_completion"] == "" and lcc["shots_chat"] == []


# The stand-in ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return datasets.standin_rows(seed=3, samples=12, max_context_chars=1500)


def test_standin_is_labelled_and_in_longbench_format(standin) -> None:
    rows, _ = standin
    assert len(rows) == 12
    for row in rows:
        assert set(datasets.LONGBENCH_FIELDS) <= set(row)
        assert row["dataset"] == "longbench-standin" and row["language"] == "python"
        assert row["input"] == "" and len(row["answers"]) == 1
    assert len({row["_id"] for row in rows}) == 12


def test_standin_answer_is_the_next_non_empty_line(standin) -> None:
    rows, origins = standin
    root = datasets.stdlib_dir()
    for row, origin in zip(rows, origins, strict=True):
        assert not datasets.STANDIN_SKIP.intersection(Path(origin["file"]).parts)
        lines = (root / origin["file"]).read_text(encoding="utf-8").splitlines(keepends=True)
        first, last = origin["context_lines"]  # 1-based, inclusive
        answer_at = origin["answer_line"] - 1
        assert lines[answer_at].rstrip() == row["answers"][0]
        assert row["answers"][0].strip() and "#" not in row["answers"][0]
        # The context is whole lines ending right before the answer (blank lines aside)...
        assert row["context"] == "".join(lines[first - 1 : last])
        assert all(not line.strip() for line in lines[last:answer_at])
        # ...cut from the front only when longer than the limit.
        assert len(row["context"]) <= 1500 or first == last
        if first > 1:
            assert len(row["context"]) + len(lines[first - 2]) > 1500


def test_standin_depends_on_the_seed_only(standin) -> None:
    again, _ = datasets.standin_rows(seed=3, samples=12, max_context_chars=1500)
    assert again == standin[0]
    other, _ = datasets.standin_rows(seed=4, samples=12, max_context_chars=1500)
    assert other != standin[0]


def test_standin_contexts_reach_the_minimum_asked() -> None:
    """With `min_context_chars`, every context ends after that many characters of its file, so
    every long prompt fills the same budget; without it, some contexts end near a file's start."""
    root = datasets.stdlib_dir()

    def file_chars_before_answer(origin: dict[str, Any]) -> int:
        lines = (root / origin["file"]).read_text(encoding="utf-8").splitlines(keepends=True)
        return len("".join(lines[: origin["context_lines"][1]]))

    _, plain = datasets.standin_rows(seed=0, samples=20, max_context_chars=6000)
    rows, origins = datasets.standin_rows(
        seed=0, samples=20, max_context_chars=6000, min_context_chars=4500
    )
    assert min(file_chars_before_answer(origin) for origin in plain) < 4500
    assert all(file_chars_before_answer(origin) >= 4500 for origin in origins)
    # Cut from the front at the maximum, a context still holds more than the minimum less a line.
    assert all(len(row["context"]) >= 4500 - 200 for row in rows)


def test_standin_minimum_above_the_maximum_is_refused_by_the_config_check() -> None:
    source = {"kind": "stdlib", "samples": 4, "max_context_chars": 1000, "min_context_chars": 2000}
    with pytest.raises(datasets.DatasetError, match="min_context_chars"):
        datasets.standin_draw(source)
    config = {
        "datasets": {"stand": {"format": "longbench-standin", "source": source}},
        "workloads": {},
    }
    with pytest.raises(configuration.ConfigError, match=r"datasets\.stand\.source: min_context"):
        configuration.check(config)


def test_standin_fetch_writes_rows_and_manifest(tmp_path: Path) -> None:
    spec = {"format": "longbench-standin", "source": {"kind": "stdlib", "seed": 0, "samples": 4}}
    raw, manifest = tmp_path / "raw", tmp_path / "manifest.json"
    datasets.fetch("longbench-standin", spec, raw, manifest)
    rows = datasets.load_standin(raw)
    assert [row["task_id"] for row in rows] == [f"longbench-standin/{i}" for i in range(4)]
    facts = json.loads(manifest.read_text())
    assert facts["label"] == "longbench-standin"
    assert facts["sha256"] == datasets.sha256_file(raw)
    assert len(facts["origins"]) == 4 and facts["python"]
    with pytest.raises(datasets.DatasetError, match="refusing"):
        datasets.fetch("longbench-standin", {**spec, "sha256": "0" * 64}, raw, manifest)


def test_standin_rows_refuse_to_pass_for_longbench(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    row = longbench_row("lcc", 0, random.Random(0))
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(datasets.DatasetError, match="longbench-standin"):
        datasets.load_standin(path)


def test_real_and_standin_workloads_through_the_dag(workdir: Path, archive: Path) -> None:
    """fetch_dataset and build_workload of the real DAG on the test archive and the stand-in."""
    config = load_tiny_config()
    config["datasets"]["longbench"] = {
        "format": "longbench",
        "source": {"kind": "file", "path": str(archive)},
        "sha256": datasets.sha256_file(archive),
    }
    config["datasets"]["longbench-standin"] = {
        "format": "longbench-standin",
        "source": {"kind": "stdlib", "seed": 1, "samples": 3},
    }
    config["workloads"] = {
        "longbench-cu": {"dataset": "longbench", "limit": 4, "max_new_tokens": 10},
        "longbench-standin-cu": {"dataset": "longbench-standin", "max_new_tokens": 10},
    }
    run = snakemake(workdir, config, "--until", "build_workload")
    assert run.returncode == 0, run.stderr[-3000:]
    real = pl.read_parquet(workdir / "results/workloads/longbench-cu.parquet")
    assert real["task_id"].to_list() == ["lcc/0", "repobench-p/0", "lcc/1", "repobench-p/1"]
    assert set(real["benchmark"]) == {"longbench"}
    fake = pl.read_parquet(workdir / "results/workloads/longbench-standin-cu.parquet")
    assert fake.height == 3 and set(fake["benchmark"]) == {"longbench-standin"}
    manifest = json.loads(
        (workdir / "resources/datasets/longbench-standin/manifest.json").read_text()
    )
    assert manifest["label"] == "longbench-standin"


def test_hub_source_downloads_the_pinned_file(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `hub` source asks the hub client for one file of a dataset repo at a commit (the
    client is replaced here: tests never download)."""
    import huggingface_hub

    asked: list[tuple] = []

    def fake_download(repo: str, filename: str, **options: Any) -> str:
        asked.append((repo, filename, options))
        return str(archive)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    source = {"kind": "hub", "repo": "THUDM/LongBench", "revision": "a" * 40, "file": "data.zip"}
    spec = {"format": "longbench", "source": source, "sha256": datasets.sha256_file(archive)}
    datasets.fetch("longbench", spec, tmp_path / "raw", tmp_path / "manifest.json")
    assert asked == [
        ("THUDM/LongBench", "data.zip", {"repo_type": "dataset", "revision": "a" * 40})
    ]
    assert (tmp_path / "raw").read_bytes() == archive.read_bytes()

    def offline(*args: Any, **options: Any) -> str:
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(datasets.DatasetError, match=r"could not download data\.zip"):
        datasets.fetch("longbench", spec, tmp_path / "raw2", tmp_path / "m2.json")
