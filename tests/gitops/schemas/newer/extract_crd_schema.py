"""Turn a published CRD YAML file into the JSON schema the gitops tests validate against.

    python extract_crd_schema.py CRD.yaml OUT.json [--kind K] [--drop FIELD]...

(the script lives in tests/gitops/schemas/newer/, the folder of the schemas it produces).

Steps, all deterministic: drop Helm template lines (`{{- if ... }}`) and blank out inline
`{{ ... }}` values (chart-packaged CRDs are templates); take the `CustomResourceDefinition`
(of `--kind`, if the file holds several) and its storage version's `openAPIV3Schema`; remove
every `description` keyword (doc text; a *property* named `description`, as in AppProject, is
kept); remove the top-level properties named by `--drop` (for Application: `operation` and
`status`, written by the controller, never by us); write it sorted with one-space indent.
`../sources.json` records, for each output (bracket `newer`), where the input came from and the
`--drop` used.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

_TEMPLATE_LINE = re.compile(r"^\s*\{\{.*\}\}\s*$")
_TEMPLATE_INLINE = re.compile(r"\{\{.*?\}\}")


def untemplate(text: str) -> str:
    """A chart's CRD template as plain YAML: directive lines removed, inline values emptied."""
    lines = [line for line in text.splitlines() if not _TEMPLATE_LINE.match(line)]
    return "\n".join(_TEMPLATE_INLINE.sub("''", line) for line in lines) + "\n"


def strip_descriptions(schema: Any, *, in_properties: bool = False) -> Any:
    """Drop the `description` keyword everywhere; keep properties that happen to be so named."""
    if isinstance(schema, dict):
        return {
            key: strip_descriptions(value, in_properties=key == "properties" and not in_properties)
            for key, value in schema.items()
            if in_properties or key != "description"
        }
    if isinstance(schema, list):
        return [strip_descriptions(value) for value in schema]
    return schema


def crd_schema(text: str, *, kind: str | None = None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The storage version's openAPIV3Schema of the CRD in `text`, descriptions stripped."""
    crds = [
        doc
        for doc in yaml.safe_load_all(untemplate(text))
        if isinstance(doc, dict)
        and doc.get("kind") == "CustomResourceDefinition"
        and (kind is None or doc["spec"]["names"]["kind"] == kind)
    ]
    if len(crds) != 1:
        raise ValueError(f"expected one CustomResourceDefinition (kind={kind}), found {len(crds)}")
    versions = crds[0]["spec"]["versions"]
    (storage,) = [v for v in versions if v.get("storage")]
    schema: dict[str, Any] = strip_descriptions(storage["schema"]["openAPIV3Schema"])
    for field in drop:
        del schema["properties"][field]
    return schema


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd", type=Path, help="CRD YAML file (plain or a chart template)")
    parser.add_argument("out", type=Path, help="JSON schema file to write")
    parser.add_argument("--kind", help="pick this kind when the file holds several CRDs")
    parser.add_argument("--drop", action="append", default=[], help="top-level property to drop")
    args = parser.parse_args(argv)
    schema = crd_schema(args.crd.read_text(), kind=args.kind, drop=tuple(args.drop))
    args.out.write_text(dumps(schema))


if __name__ == "__main__":
    main()
