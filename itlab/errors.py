"""Errors that end a job with one line naming the config key (itlab.scripting.one_line_errors).

Kept apart from ``itlab.hub`` so that every job can catch them without importing the hub and
stand-in code (and through it transformers)."""


class HubError(RuntimeError):
    """A bad hub id, revision, token, split or template: one line naming the config key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")
