"""Shared fixtures: the repository, the tiny test config, Snakemake in a temp dir, a tiny model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def load_tiny_config() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def snakemake_command(workdir: Path, config: dict | Path, *args: str) -> list[str]:
    """The command line that runs the real workflow in `workdir` with `config` (a dict is
    written there first)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        config_path = config
    return [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        "2",
        *args,
    ]


def snakemake(
    workdir: Path, config: dict | Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real workflow in `workdir` with `config` and wait for it."""
    command = snakemake_command(workdir, config, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)


@pytest.fixture(scope="session", autouse=True)
def scontrol_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder, first on PATH for the whole session, whose `scontrol` fails at once.

    Snakemake's Slurm executor plugin asks `scontrol show config` for MinJobAge whenever it is
    imported, that is at every Snakemake start; where Slurm's tools are installed but no
    controller answers, scontrol retries for about ten seconds first. No test but
    tests/test_slurm.py (which takes this folder off its PATH) means a cluster."""
    folder = tmp_path_factory.mktemp("no-slurm-cluster")
    stand_in = folder / "scontrol"
    stand_in.write_text(
        "#!/bin/sh\n"
        'echo "scontrol: no Slurm cluster in these tests (see tests/conftest.py)" >&2\n'
        "exit 1\n"
    )
    stand_in.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", os.pathsep.join([str(folder), os.environ["PATH"]]))
        yield folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model of the test config, prepared once for the session."""
    from llmenergy import models

    name, spec = next(iter(load_tiny_config()["models"].items()))
    folder = tmp_path_factory.mktemp("models") / name
    models.prepare(name, spec, folder, log=lambda _: None)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from llmenergy import models

    name, spec = next(iter(load_tiny_config()["models"].items()))
    return models.load(tiny_model_dir, name, spec)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Tests under tests/gpu/ are marked `gpu` and skipped where CUDA is missing."""
    import torch

    for item in items:
        if "gpu" in Path(item.path).relative_to(REPO / "tests").parts[:1]:
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
