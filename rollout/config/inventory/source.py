"""Reading an inventory's files: regular files of bounded size, UTF-8, and what rollout does not read."""

from __future__ import annotations

import os
from pathlib import Path

from rollout.config.yamlfile import read_bounded
from rollout.errors import ConfigError

VAULT_HEADER = b"$ANSIBLE_VAULT;"


def read_bytes(path: Path, display: str) -> bytes:
    """The file's bytes; every failure is a ConfigError naming ``display``."""
    return read_bounded(path, display, "an inventory file")


def text_of(raw: bytes, display: str) -> str:
    if raw.startswith(VAULT_HEADER):
        raise ConfigError.one(
            display, "vault-encrypted file is not read", expected="a plain file (encrypt single values with !vault)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.one(display, f"not UTF-8 text (byte {exc.start})") from None


def read_text(path: Path, display: str) -> str:
    return text_of(read_bytes(path, display), display)


def is_script(path: Path, raw: bytes) -> bool:
    """An executable file starting with '#!': Ansible would run it as a dynamic inventory script."""
    return raw.startswith(b"#!") and os.access(path, os.X_OK)
