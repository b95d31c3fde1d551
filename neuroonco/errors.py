"""Errors a person can act on. The CLI prints them as one clean line; tests let them raise."""

from __future__ import annotations


class NeuroOncoError(Exception):
    """Base class: the message says what went wrong and how to fix it."""


class UnreadableInput(NeuroOncoError):
    """A source file that cannot be ingested; the message becomes its `rejected_inputs` reason."""


class StoreError(NeuroOncoError):
    """The SQLite store cannot be opened or migrated."""


class ConfigError(NeuroOncoError):
    """A bad model spec, option or config file."""
