"""The documents against what they describe: the configuration page against the schema, the
records tables against records.py, the README's length, and every relative link."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from llmenergy import records

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
WRITE = "python scripts/config_doc.py --write"


def config_doc():
    """scripts/config_doc.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("config_doc", REPO / "scripts" / "config_doc.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_configuration_page_is_what_the_script_writes_now():
    script = config_doc()
    expected = script.render(script.load_schema())
    written = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert written == expected, f"docs/configuration.md is out of date: run `{WRITE}`"


def schema_key_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key path the schema allows, walked here apart from the script's own walker."""
    while "$ref" in node:
        node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **node}
        del node["$ref"]
    paths = set()
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths |= {path} | schema_key_paths(child, path)
    if isinstance(node.get("additionalProperties"), dict):
        path = f"{prefix}.<name>"
        paths |= {path} | schema_key_paths(node["additionalProperties"], path)
    if "properties" in node.get("items", {}):
        paths |= schema_key_paths(node["items"], f"{prefix}[]")
    for form in [part.get("then", {}) for part in node.get("allOf", [])] + node.get("oneOf", []):
        paths |= schema_key_paths(form, prefix)
    return paths


def test_configuration_page_documents_every_key_of_the_schema_and_no_other():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8").split("\n## Keys\n", 1)[1]
    documented = re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)
    assert len(documented) == len(set(documented)), "a key is documented twice"
    expected = schema_key_paths(SCHEMA)
    assert set(documented) == expected, (
        f"missing: {sorted(expected - set(documented))}, "
        f"not in the schema: {sorted(set(documented) - expected)}; run `{WRITE}`"
    )


TYPE_NAMES = {pl.String(): "string", pl.Int64(): "integer", pl.Float64(): "float"}
TYPE_NAMES[pl.Boolean()] = "boolean"


def records_table(heading: str) -> list[tuple[str, str]]:
    """(column, type) of each row of the first table after `### heading` in docs/design.md."""
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text.split(f"\n### {heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \| (\w+) \|", section, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("heading", "schema"),
    [
        ("Generation records", records.GENERATION_SCHEMA),
        ("Token records", records.TOKEN_SCHEMA),
        ("Score records", records.SCORE_SCHEMA_WITH_CODE_SIM),
        ("Babble records", records.BABBLE_SCHEMA),
    ],
)
def test_records_tables_list_every_column_in_order(heading: str, schema: dict):
    expected = [(name, TYPE_NAMES[dtype]) for name, dtype in schema.items()]
    assert records_table(heading) == expected


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; move detail into docs/"


def prose(path: Path) -> str:
    """A markdown file without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings, as GitHub makes them."""
    headings = re.findall(r"^#+ (.+)$", prose(path), flags=re.MULTILINE)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings
    }


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_point_to_files_and_headings_that_exist(document: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(document)):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        name, _, anchor = target.partition("#")
        linked = (document.parent / name).resolve() if name else document
        assert linked.exists(), f"{document.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{document.name}: no heading for {target}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_document_names_design_md_in_capitals(document: Path):
    assert "DESIGN.md" not in document.read_text(encoding="utf-8")
