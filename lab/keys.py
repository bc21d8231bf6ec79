"""The lab's client SSH identity: one ed25519 key per user, made on first use."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .paths import data_dir


def client_key_path() -> Path:
    return data_dir() / "id_ed25519"


def ensure_client_key() -> tuple[Path, str]:
    """Path of the private key (OpenSSH format) and the public key line."""
    priv = client_key_path()
    pub = priv.with_suffix(".pub")
    if not priv.is_file():
        priv.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
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
