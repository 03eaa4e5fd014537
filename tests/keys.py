"""Throw-away SSH keys generated once per test run (none are kept in the repository)."""
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def new_private_key(passphrase=None):
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption).decode()


ED25519_PRIVATE = new_private_key()
ED25519_ENCRYPTED_PASSPHRASE = "secret-pass"
ED25519_ENCRYPTED = new_private_key(ED25519_ENCRYPTED_PASSPHRASE)
