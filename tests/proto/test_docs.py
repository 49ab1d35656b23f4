"""docs/wire-format.md's error-code table is the real one."""

from __future__ import annotations

from pathlib import Path

from imsdk_proto.codes import ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


def test_error_code_table_matches_the_enum() -> None:
    text = DOC.read_text()
    for code in ErrorCode:
        assert f"| {code.value} | `{code.name}` | {code.category} | {code.doc} |" in text, code.name
