"""The JSON Schema of scenario files (harness/schema/scenario.schema.json) and validation with it.

Why a schema beside the loader: editors (VS Code's YAML extension, via a
`# yaml-language-server: $schema=...` comment) complete and underline scenario files as they are
typed. The loader stays the authority (it checks what a schema cannot: pod names inside
matrices, policies against the Kubernetes API, agreement with the oracle); tests keep the two in
step by validating every fixture with both.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parents[1] / "schema" / "scenario.schema.json"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The scenario schema as a dict (draft 2020-12)."""
    return json.loads(SCHEMA_PATH.read_text())


def schema_errors(document: Any) -> list[str]:
    """`<field path>: <message>` for every place `document` breaks the schema ([] when valid)."""
    # imported when used: jsonschema and kubernetes-validate take 0.4-0.6 s to import
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    out = []
    for err in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path).lstrip(".")
        out.append(f"{path or '(top level)'}: {err.message}")
    return out
