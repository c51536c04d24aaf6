"""The one exception type users see for what they got wrong."""

from __future__ import annotations


class SeqbatchError(Exception):
    """A problem the user can fix: a bad path, an empty name, a mismatched checkpoint.

    The message always names the file, line or value at fault; the command line prints it
    without a traceback and exits with status 2.
    """
