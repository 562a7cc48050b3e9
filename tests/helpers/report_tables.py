"""Reading a table of the HTML report back, cell by cell, to check it against its Parquet."""

from __future__ import annotations

from html.parser import HTMLParser

import polars as pl

from llmenergy import report


class TableCells(HTMLParser):
    """Collect the cells of one table of the report as dicts of their attributes and text."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.rows: list[list[dict[str, str]]] = []
        self._in_table = False
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table" and attributes.get("id") == self.table_id:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = {**attributes, "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self.rows[-1].append(self._cell)
            self._cell = None


def exact(value) -> str:
    """How the report writes an exact value in a data-* attribute."""
    return "" if value is None else str(value)


def assert_table_matches(html: str, table_id: str, frame: pl.DataFrame, columns) -> None:
    """Every cell of the report's table shows, and holds, the Parquet value it comes from."""
    parser = TableCells(table_id)
    parser.feed(html)
    rows = [row for row in parser.rows if row]
    assert len(rows) == frame.height, table_id
    names = [name for name, _, _ in columns if name in frame.columns]
    for cells, expected in zip(rows, frame.iter_rows(named=True), strict=True):
        assert [cell["data-column"] for cell in cells] == names, table_id
        for cell in cells:
            column = cell["data-column"]
            truth = expected[column]
            low, high = expected.get(f"{column}_lo"), expected.get(f"{column}_hi")
            assert cell["text"] == report.format_cell(column, truth, low, high), column
            assert cell["data-value"] == exact(truth), column
            if low is not None and truth is not None:
                assert (cell["data-low"], cell["data-high"]) == (exact(low), exact(high))
