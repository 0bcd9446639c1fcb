"""What the window holds beyond the document: the trained model, the results
shown, the weights of an opened bundle or run, and the loaded data."""

from __future__ import annotations

from pathlib import Path


class Session:
    """One place for the state that belongs to the open project's model;
    ``reset`` forgets it when another project is opened or started."""

    def __init__(self) -> None:
        self.trainer = None  # the trained (or evaluated) model's Trainer: Evaluate and Export use it
        self.last_result = None  # the FitResult shown in Results
        #: (project as opened, weights) of an opened bundle or a project's last run:
        #: Evaluate measures them, Train goes on from them while the model is unchanged.
        self.bundle = None
        self.run_dir: Path | None = None  # the run folder of the last run started or opened
        # The data is kept across projects: it is keyed by its settings, so it is never stale.
        self._data: tuple[str, object] | None = None
        #: Counts resets: work started for one project is dropped when it ends under another.
        self.generation = 0

    def reset(self) -> None:
        """Another project: nothing trained, nothing shown, no weights to go on from."""
        self.generation += 1
        self.trainer = None
        self.last_result = None
        self.bundle = None
        self.run_dir = None

    # -- data ----------------------------------------------------------------------------

    def cached_data(self, key: str):
        """The prepared data loaded with the settings ``key``, or None."""
        if self._data and self._data[0] == key:
            return self._data[1]
        return None

    def keep_data(self, key: str, data) -> None:
        self._data = (key, data)

    # -- models --------------------------------------------------------------------------

    def weights_for(self, project):
        """The opened bundle's or run's weights while ``project``'s model is the
        one they belong to, else None."""
        if self.bundle is not None and self.bundle[0].model == project.model:
            return self.bundle[1]
        return None

    def adopt(self, outcome: dict, data_key: str | None) -> None:
        """A run's or an evaluation's outcome becomes the session's model and result."""
        self.trainer = outcome["trainer"]  # None when the model could not be loaded here
        self.last_result = outcome["result"]
        if outcome.get("data") is not None and data_key is not None:  # on the CPU: kept for the next
            self.keep_data(data_key, outcome["data"])
