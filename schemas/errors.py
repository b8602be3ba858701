"""The error types every layer of umh raises: one root, and validation that names each field."""

from __future__ import annotations

from dataclasses import dataclass


class UmhError(Exception):
    """Root of every error umh raises on purpose."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with an input, located by its JSON path (`accounts[1].lots[4].quantity`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ValidationError(UmhError):
    """An input failed validation; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues) or "invalid input")
