"""Values encrypted with ansible-vault (``!vault |`` as ``ansible-vault encrypt_string`` writes
them), and the one place they are decrypted.

A ``Vaulted`` value carries its ciphertext and where it came from; it shows as ``***``
wherever it is printed, formatted or turned into JSON, and hashes by its ciphertext, so a
changed secret changes every hash that covers it. Only the renderer asks for the plain text,
while a template renders; each ciphertext is decrypted once per process.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rollout.errors import ConfigError
from rollout.masking import MASK, remember

VAULT_TAG = "!vault"
PASSWORD_ENV = "ROLLOUT_VAULT_PASSWORD_FILE"
_MAX_PASSWORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Vaulted:
    """An encrypted value as written in a values file."""

    ciphertext: str
    file: str
    location: str
    line: int | None

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    @property
    def digest(self) -> str:
        """What hashes see: the ciphertext's digest (not secret), never the plain text."""
        return "vault:" + hashlib.sha256(self.ciphertext.encode()).hexdigest()


def json_default(value: object) -> str:
    """``default=`` for json.dumps: a Vaulted value as its digest, anything else as str()."""
    return value.digest if isinstance(value, Vaulted) else str(value)


@dataclass
class Vault:
    """The password (read from ``password_file`` when first needed) and what it decrypted."""

    password_file: Path | None = None
    _password: bytes | None = field(default=None, repr=False)  # never in a repr: no debug line shows them
    _plain: dict[str, str] = field(default_factory=dict, repr=False)
    _failed: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_option(cls, password_file: Path | None) -> Vault:
        """The option's file, else ``$ROLLOUT_VAULT_PASSWORD_FILE``, else none (fine without vaulted values)."""
        if password_file is None and os.environ.get(PASSWORD_ENV):
            password_file = Path(os.environ[PASSWORD_ENV])
        return cls(password_file)

    def decrypt(self, value: Vaulted) -> str:
        if value.ciphertext in self._failed:  # each wrong ciphertext costs its key derivation once
            message, expected = self._failed[value.ciphertext]
            raise _problem(value, message, expected)
        if value.ciphertext not in self._plain:
            self._plain[value.ciphertext] = self._decrypt(value)
        return self._plain[value.ciphertext]

    def decrypt_quietly(self, values: list[Vaulted]) -> None:
        """Decrypt what can be, so that this process masks it, even where forked workers rendered;
        what cannot is reported where a plant's values are checked."""
        for value in values:
            try:
                self.decrypt(value)
            except ConfigError:
                pass

    def _decrypt(self, value: Vaulted) -> str:
        from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret  # heavy: only when needed

        vault = VaultLib([("default", VaultSecret(self._read_password(value)))])
        try:
            plain: str = vault.decrypt(value.ciphertext.encode()).decode("utf-8")
        except AnsibleVaultError as exc:
            message = f"cannot decrypt with the password in {self.password_file}: {str(exc).rstrip('.')}"
            return self._refuse(value, message, "the password the value was encrypted with")
        except UnicodeDecodeError:
            return self._refuse(value, "decrypted value is not UTF-8 text", "an encrypted UTF-8 string")
        remember(plain)
        return plain

    def _refuse(self, value: Vaulted, message: str, expected: str) -> NoReturn:
        self._failed[value.ciphertext] = (message, expected)
        raise _problem(value, message, expected)

    def _read_password(self, value: Vaulted) -> bytes:
        if self._password is not None:
            return self._password
        if self.password_file is None:
            raise _problem(value, "encrypted value, but no vault password", f"--vault-password-file or ${PASSWORD_ENV}")
        where = f"vault password file {self.password_file}"
        try:
            with self.password_file.open("rb") as f:
                raw = f.read(_MAX_PASSWORD_BYTES + 1)
        except FileNotFoundError:
            raise _problem(value, f"{where} not found", "a readable vault password file") from None
        except OSError as exc:
            raise _problem(value, f"cannot read {where}: {exc.strerror}", "a readable vault password file") from None
        password = raw.strip()  # as ansible-vault reads a password file
        if not password or len(raw) > _MAX_PASSWORD_BYTES:
            raise _problem(value, f"{where} is empty or too large", "a password of 1 to 64 KiB")
        self._password = password
        return password

    def reveal(self, data: Any) -> Any:
        """``data`` with every Vaulted value replaced by its plain text (a new structure where needed)."""
        if isinstance(data, Vaulted):
            return self.decrypt(data)
        if isinstance(data, dict):
            return {k: self.reveal(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.reveal(v) for v in data]
        return data


def vaulted_in(data: Any) -> list[Vaulted]:
    """Every Vaulted value in ``data``."""
    if isinstance(data, Vaulted):
        return [data]
    if isinstance(data, dict):
        return [v for child in data.values() for v in vaulted_in(child)]
    if isinstance(data, list):
        return [v for child in data for v in vaulted_in(child)]
    return []


def _problem(value: Vaulted, message: str, expected: str) -> ConfigError:
    return ConfigError.one(value.file, message, line=value.line, location=value.location, expected=expected)
