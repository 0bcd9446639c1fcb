"""Problems found in a project, each with the JSON path it is about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    #: JSON path such as ``model.layers[3].params.kernel_size``; empty for the
    #: document as a whole.
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProjectError(ValueError):
    """A project that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem] | Problem, source: str | None = None):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.source = source
        super().__init__(str(self))

    def lines(self) -> list[str]:
        """One line per problem, prefixed with the file name when known."""
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + str(problem) for problem in self.problems]

    def __str__(self) -> str:
        return "\n".join(self.lines())
