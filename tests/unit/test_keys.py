"""The client identity: an RSA key, made once, loaded once per process."""

import paramiko

from lab import keys


def test_client_key_is_rsa_made_once_and_loaded_once(tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "data_dir", lambda: tmp_path)
    path, line = keys.ensure_client_key()
    assert path.name == "id_rsa" and line.startswith("ssh-rsa ") and line.endswith(" lab")
    assert (path.stat().st_mode & 0o777) == 0o600
    assert keys.ensure_client_key() == (path, line)          # not made again
    pkey = keys.load_client_key(path)
    assert isinstance(pkey, paramiko.RSAKey) and pkey.get_base64() == line.split()[1]
    assert keys.load_client_key(path) is pkey                # read once
    sig = pkey.sign_ssh_data(b"exchange hash", "rsa-sha2-256")
    sig.rewind()
    assert paramiko.RSAKey(data=pkey.asbytes()).verify_ssh_sig(b"exchange hash", sig)


def test_a_replaced_key_file_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "data_dir", lambda: tmp_path)
    path, _ = keys.ensure_client_key()
    first = keys.load_client_key(path)
    path.unlink()
    path.with_suffix(".pub").unlink()
    path, line = keys.ensure_client_key()
    again = keys.load_client_key(path)
    assert again is not first and again.get_base64() == line.split()[1]
