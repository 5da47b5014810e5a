"""The package's errors: one base class, and `one_line` to show any exception as one line.

Every error the package raises on purpose derives from `PabError` and carries a message that names
the problem and the fix; the command lines print it as one line and exit 2, never a traceback.
"""
from __future__ import annotations

import traceback
from collections.abc import Iterable


class PabError(Exception):
    """An error whose message names the problem and the fix, shown to the user as one line."""


class ConfigError(PabError, ValueError):
    """A configuration no run can start with; the message names the key and the fix."""


class CampaignError(PabError):
    """Analysis of a campaign cannot go on; the message says what is wrong and how to fix it."""


class StoreError(PabError):
    """A campaign file that is missing, unreadable or not of the data contract's shape."""


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' naming the one of `known` closest to the mistyped `given` (difflib's
    similarity ratio ≥ 0.6), else ''. `did_you_mean("model.nme", ["model.name", "seed"])` is
    `" (did you mean model.name?)"`."""
    import difflib  # only on an error's path

    match = difflib.get_close_matches(given, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def one_line(exc: BaseException) -> str:
    """The first meaningful line of `exc`'s message, with its type when the message is empty.

    Blank lines are skipped; the message of a chained cause is appended in parentheses when it adds
    something. `one_line(ValueError("bad\\nmore"))` is `"bad"`.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return traceback.format_exception_only(type(exc), exc)[-1].strip()
    text = lines[0]
    cause = exc.__cause__
    if cause is not None:
        cause_lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        if cause_lines and cause_lines[0] not in text:
            text += f" ({cause_lines[0]})"
    return text
