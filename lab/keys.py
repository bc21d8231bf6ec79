"""The lab's client SSH identity: one RSA key per user, made on first use.

RSA because the guest checks the client's signature on every connection, under
emulation: dropbear verifies an RSA signature (public exponent 65537) in a few
modular multiplications, an ed25519 one in two scalar multiplications. Measured
on i386-up: 0.12 s per connection against 0.18 s (alpha-pws500au: 0.12 against
0.13). The key is made here and read only by lab, so loading it skips the RSA
consistency check, which took 0.13 s per load for 2048 bits.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .paths import data_dir


def client_key_path() -> Path:
    return data_dir() / "id_rsa"


def ensure_client_key() -> tuple[Path, str]:
    """Path of the private key (OpenSSH format) and the public key line."""
    priv = client_key_path()
    pub = priv.with_suffix(".pub")
    if not priv.is_file():
        priv.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        tmp = priv.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        pub.write_text(line + " lab\n")
        os.rename(tmp, priv)
    return priv, pub.read_text().strip()


def load_client_key(path: Path) -> paramiko.PKey:
    """The private key at ``path`` as paramiko signs with it, read once per process
    (and again if the file changes)."""
    st = path.stat()
    return _load(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> paramiko.PKey:
    data = Path(path).read_bytes()
    key = serialization.load_ssh_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    if isinstance(key, rsa.RSAPrivateKey):
        return paramiko.RSAKey(key=key)
    return paramiko.PKey.from_path(path)
