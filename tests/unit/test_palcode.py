"""The PALcode step's source download (no network: apt and the mirror are faked)."""

import hashlib
import io

import pytest

from lab.errors import LabError
from lab.images import palcode


def apt_listing(tarball: bytes, digest: str | None = None) -> str:
    """What `apt-get source --print-uris` says of a source package, for a tarball."""
    digest = digest or hashlib.sha256(tarball).hexdigest()
    return ("NOTICE: 'qemu' packaging is maintained in the 'Git' version control system at:\n"
            "'http://deb.example/pool/q/qemu/qemu_10.0.2%2bds-2.dsc' qemu_10.0.2+ds-2.dsc 11887 "
            "SHA256:00\n"
            f"'http://deb.example/pool/q/qemu/qemu_10.0.2%2bds.orig.tar.xz' qemu_10.0.2+ds.orig.tar.xz "
            f"{len(tarball)} SHA256:{digest}\n")


@pytest.mark.parametrize("bad", [False, True])
def test_palcode_fetches_only_the_upstream_tarball_and_checks_it(tmp_path, monkeypatch, bad):
    # mirrors may lack a backport's .dsc: the step reads the tarball alone, and only
    # if it is the one apt's source index names
    tarball = b"qemu source" * 100
    urls = []
    monkeypatch.setattr(palcode, "apt_get_source", lambda spec, *options: apt_listing(
        tarball, "0" * 64 if bad else None) if options == ("--print-uris",) else None)

    def urlopen(url, timeout):
        urls.append(url)
        return io.BytesIO(tarball)
    monkeypatch.setattr(palcode.urllib.request, "urlopen", urlopen)
    log = tmp_path / "log"
    if bad:
        with pytest.raises(LabError, match="apt's source index says"):
            palcode.fetch_orig_tarball("qemu=1:10.0.2+ds-2", tmp_path, log)
    else:
        got = palcode.fetch_orig_tarball("qemu=1:10.0.2+ds-2", tmp_path, log)
        assert got.name == "qemu_10.0.2+ds.orig.tar.xz" and got.read_bytes() == tarball
    assert urls == ["http://deb.example/pool/q/qemu/qemu_10.0.2%2bds.orig.tar.xz"]
