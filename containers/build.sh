#!/usr/bin/env bash
# Build the llmenergy image with Docker, then the Apptainer image from it where Apptainer exists.
#
#   containers/build.sh                      GPU image: CUDA torch from PyPI, official Python base
#   containers/build.sh --local-base --torch-wheels /opt/wheels --tag llmenergy:0.1.0-cpu
#                                            CPU image, base made here from Debian packages
#
# Options:
#   --tag TAG            image tag (default llmenergy:<version in pyproject.toml>)
#   --base IMAGE         base image (default: the Dockerfile's pinned Python image)
#   --local-base         build the base with debootstrap (Debian bookworm, python3, venv,
#                        ca-certificates) and `docker import` it as llmenergy-base:bookworm;
#                        an existing llmenergy-base:bookworm is reused
#   --rebuild-base       with --local-base: build the base again even if it exists
#   --torch-wheels DIR   install torch from the wheels in DIR (e.g. a CPU build) instead of PyPI
#   --pip-cert FILE      CA bundle pip trusts inside the build, for networks that inspect TLS
#                        (default: $PIP_CERT, else the host's /etc/ssl/certs/ca-certificates.crt;
#                        `none`: the base image's own); used by the build only, not kept
#                        in the image
#   --sif PATH           where the Apptainer image goes (default containers/llmenergy.sif)
#   --no-apptainer       skip the Apptainer image even if apptainer is installed
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian) for --local-base.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml")"
tag="llmenergy:$version"
base=""
local_base=false
rebuild_base=false
torch_wheels=""
pip_cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
sif="$here/llmenergy.sif"
apptainer=true
local_base_tag="llmenergy-base:bookworm"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) tag="$2"; shift 2 ;;
        --base) base="$2"; shift 2 ;;
        --local-base) local_base=true; shift ;;
        --rebuild-base) rebuild_base=true; shift ;;
        --torch-wheels) torch_wheels="$2"; shift 2 ;;
        --pip-cert) pip_cert="$2"; shift 2 ;;
        --sif) sif="$2"; shift 2 ;;
        --no-apptainer) apptainer=false; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '== %s\n' "$*" >&2; }

if ! docker info > /dev/null 2>&1; then
    echo "build.sh: no Docker daemon answers (is dockerd running, may this user use it?)" >&2
    exit 1
fi

if "$local_base"; then
    base="$local_base_tag"
    if "$rebuild_base" || ! docker image inspect "$base" > /dev/null 2>&1; then
        command -v debootstrap > /dev/null || {
            echo "build.sh: --local-base needs debootstrap (apt-get install debootstrap)" >&2
            exit 1
        }
        log "making $base with debootstrap"
        rootfs="$(mktemp -d)"
        trap 'rm -rf "$rootfs"' EXIT
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$rootfs.log" \
            || { tail -20 "$rootfs.log" >&2; exit 1; }
        rm -f "$rootfs.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        debian="$(cat "$rootfs/etc/debian_version")"
        tar -C "$rootfs" -c . | docker import \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            --message "debootstrap bookworm minbase (Debian $debian), python3 python3-venv" \
            - "$base" > /dev/null
        rm -rf "$rootfs"
        trap - EXIT
    else
        log "reusing $base"
    fi
fi

# The build context: only what the image needs (no .venv, results or caches).
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
(
    cd "$repo"
    tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
        Snakefile pyproject.toml README.md requirements.txt requirements-nodeps.txt \
        src rules workflow config reports data/reference profiles containers/Dockerfile \
        containers/llmenergy-run
) | tar -x -C "$context"
mkdir -p "$context/build/wheels"
if [[ "$pip_cert" != none && -f "$pip_cert" ]]; then
    cp "$pip_cert" "$context/build/ca.crt"
else
    : > "$context/build/ca.crt"
fi
if [[ -n "$torch_wheels" ]]; then
    found=("$torch_wheels"/torch-*.whl)
    [[ -e "${found[0]}" ]] || { echo "build.sh: no torch-*.whl in $torch_wheels" >&2; exit 1; }
    cp "${found[@]}" "$context/build/wheels/"
fi

commit="unknown"
if git -C "$repo" rev-parse HEAD > /dev/null 2>&1; then
    commit="$(git -C "$repo" rev-parse HEAD)"
    if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
        commit="$commit+dirty"
    fi
fi

args=(--tag "$tag" --file "$context/containers/Dockerfile" --build-arg "GIT_COMMIT=$commit")
if [[ -n "$base" ]]; then
    args+=(--build-arg "BASE_IMAGE=$base")
fi
log "docker build $tag (base ${base:-default}, torch from ${torch_wheels:-PyPI})"
previous="$(docker image inspect --format '{{.Id}}' "$tag" 2> /dev/null || true)"
docker build "${args[@]}" "$context"
# The image this tag named before is of no further use: drop it (cached layers stay).
if [[ -n "$previous" && "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]]; then
    docker image rm "$previous" > /dev/null 2>&1 || true
fi

apptainer_bin="$(command -v apptainer || command -v singularity || true)"
if "$apptainer" && [[ -n "$apptainer_bin" ]]; then
    log "apptainer build $sif from $tag"
    "$apptainer_bin" build --force --build-arg "IMAGE=$tag" "$sif" "$here/llmenergy.def"
elif "$apptainer"; then
    log "apptainer not found: skipped $sif (the Docker image $tag is built)"
fi
log "built $tag"
