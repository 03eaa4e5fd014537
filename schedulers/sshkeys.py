"""Parsing SSH private keys without touching disk."""
import base64
import hashlib
import io

import paramiko

KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class BadKeyError(ValueError):
    """The text is not a private key we can use (or the passphrase is wrong)."""


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    last = None
    for cls in KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise BadKeyError("The key is encrypted: give its passphrase.") from None
        except (paramiko.SSHException, ValueError, IndexError) as exc:
            last = exc
    message = str(last) if last else "unknown format"
    if "passphrase" in message.lower() or "decrypt" in message.lower():
        raise BadKeyError("The passphrase does not open this key.")
    raise BadKeyError("Not an OpenSSH or PEM private key (Ed25519, ECDSA or RSA).")


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def describe(text: str, passphrase: str | None = None) -> tuple[str, str]:
    """(public key line, SHA256 fingerprint) of a private key."""
    key = load_private_key(text, passphrase)
    return public_line(key), fingerprint(key)


def host_key_line(key: paramiko.PKey) -> str:
    return public_line(key)
