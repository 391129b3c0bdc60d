"""The error tree. The library raises these; only the CLI prints them or picks exit codes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as the source allows."""

    file: str
    """Path of the offending file, relative to the project where possible."""
    location: str = ""
    """Key path inside the file (``layers[1].checks[0].timeout``), or empty for the whole file."""
    line: int | None = None
    """1-based line in the file, when the loader knows it."""
    expected: str = ""
    found: str = ""
    message: str = ""

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.location:
            where += f": {self.location}"
        parts = [p for p in (self.message,) if p]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.found:
            parts.append(f"found {self.found}")
        return f"{where}: {'; '.join(parts) or 'invalid'}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "location": self.location,
            "line": self.line,
            "expected": self.expected,
            "found": self.found,
            "message": self.message,
        }


class RolloutError(Exception):
    """Root of every error the library raises on purpose."""


class ConfigError(RolloutError):
    """Bad input: configuration, overlays, templates, refs or arguments. Nothing was touched."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = list(dict.fromkeys(problems))  # plants sharing a fault report it once
        super().__init__("\n".join(p.render() for p in problems))

    @classmethod
    def one(
        cls,
        file: str,
        message: str,
        location: str = "",
        line: int | None = None,
        expected: str = "",
        found: str = "",
    ) -> ConfigError:
        """Shorthand for a single problem."""
        problem = Problem(file, location, line, expected, found, message)
        return cls([problem])


class ReleaseError(ConfigError):
    """The code base cannot be read at the requested release (unknown ref, missing folder)."""


class RenderError(ConfigError):
    """A template failed to render: undefined value, syntax error, sandbox violation."""


class PlanError(ConfigError):
    """The strategy cannot be turned into a plan (a plant in no wave or in two)."""


def shorten(value: object, limit: int = 60) -> str:
    """A short, printable description of a found value, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
