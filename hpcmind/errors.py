"""Typed errors; only the CLI entry point turns them into exit codes."""


class UsageError(Exception):
    """Bad usage or bad input: exit 2 with a one-line message naming the argument, field or variable."""


class NotBuiltError(UsageError):
    """A subcommand whose issue has not landed yet."""
