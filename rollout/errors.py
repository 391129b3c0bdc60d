"""The error tree. The library raises these; only the CLI prints them or picks exit codes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rollout.masking import mask


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

    def shown(self) -> Problem:
        """This problem as it may be shown: names and values from the input can hold control, bidi or
        undecodable characters, which would hide or reorder text on a terminal or fail to encode."""
        texts = (self.file, self.location, self.expected, self.found, self.message)
        file, location, expected, found, message = (printable(mask(t)) for t in texts)
        return replace(self, file=file, location=location, expected=expected, found=found, message=message)

    def render(self) -> str:
        p = self.shown()
        where = p.file
        if p.line is not None:
            where += f":{p.line}"
        if p.location:
            where += f": {p.location}"
        parts = [m for m in (p.message,) if m]
        if p.expected:
            parts.append(f"expected {p.expected}")
        if p.found:
            parts.append(f"found {p.found}")
        return f"{where}: {'; '.join(parts) or 'invalid'}"

    def as_dict(self) -> dict[str, object]:
        p = self.shown()
        return {
            "file": p.file,
            "location": p.location,
            "line": p.line,
            "expected": p.expected,
            "found": p.found,
            "message": p.message,
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


def printable(text: str) -> str:
    """``text`` as is if it prints as itself, else escaped: control, bidi and undecodable characters."""
    return text if text.isprintable() else repr(text)[1:-1]


def shorten(value: object, limit: int = 60) -> str:
    """A short, printable description of a found value, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
