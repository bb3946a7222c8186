"""Secret references in the rules file: `${ENV_VAR}` or a path to a file holding the secret.

Secrets are never written into the rules file itself, and a resolved value never shows in a repr,
a log line or an error message: only the reference does.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
ENV_IN_STRING = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_file_ref(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~", "file:"))


def is_reference(ref: str) -> bool:
    return bool(ENV_REF.match(ref)) or is_file_ref(ref)


@dataclass(frozen=True)
class Secret:
    """A resolved secret reference. `value` is None when the reference could not be resolved."""

    ref: str
    value: str | None = field(default=None, repr=False, compare=False)
    problem: str | None = None

    def __str__(self) -> str:
        return self.ref

    def fingerprint(self) -> str | None:
        """A SHA-256 prefix that identifies the key in the audit log without revealing it."""
        if self.value is None:
            return None
        return "sha256:" + hashlib.sha256(self.value.encode()).hexdigest()[:16]


def resolve(ref: str, base_dir: Path) -> Secret:
    """Resolves a reference; a missing variable or file is reported, not raised, so one bad
    provider does not take the others down (its requests fail closed with this message)."""
    if match := ENV_REF.match(ref):
        name = match.group(1)
        value = os.environ.get(name)
        if not value:
            return Secret(ref, None, f"environment variable {name} is not set; export it and restart")
        return Secret(ref, value.strip())
    path = Path(os.path.expanduser(ref.removeprefix("file:")))
    if not path.is_absolute():
        path = base_dir / path
    try:
        value = path.read_text().strip()
    except OSError as e:
        return Secret(ref, None, f"secret file {path} cannot be read ({e.strerror})")
    if not value:
        return Secret(ref, None, f"secret file {path} is empty")
    return Secret(ref, value)


def expand_env(text: str) -> str:
    """Expands `${VAR}` in a non-secret setting (endpoints, file paths); unset variables stay visible."""
    return ENV_IN_STRING.sub(lambda m: os.environ.get(m.group(1), m.group(0)), text)
