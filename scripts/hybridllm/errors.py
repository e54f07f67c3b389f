"""The one error type the tools show to users: it names the file, what is wrong and the fix."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    def __init__(self, where: str, problem: str, fix: str | None = None) -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.problem}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text
