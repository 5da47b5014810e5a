"""One line and exit status 2 for a sweep the launchers or the checked sweeper refuse, in any Hydra
app: Hydra itself prints the full chained traceback of an error raised inside a plugin.

It lives in the package, not in `hydra_plugins`, for the reason `plan` gives."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from pab_campaign.errors import one_line
from pab_campaign.launching.plan import LauncherConfigError

F = TypeVar("F", bound=Callable[..., Any])


class JobRefused(LauncherConfigError):
    """A job's config that the app's `validate` refused before the sweep started."""


def program() -> str:
    """The command's name for its error line: the script's name, or the package of `python -m pkg`."""
    path = Path(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    return path.parent.name if path.name == "__main__.py" else path.name


def exit_on_refusal(method: F) -> F:
    """Run `method`; a LauncherConfigError it raises becomes `<program>: error: <one line>` on stderr
    and SystemExit(2), which Hydra passes through without a traceback."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except LauncherConfigError as exc:
            print(f"{program()}: error: {one_line(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return cast(F, wrapper)
