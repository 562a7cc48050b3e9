"""Job logs: timestamped progress lines in the rule's log file, with Python's own warnings."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def to_file(path: str | Path) -> Iterator[Callable[[str], None]]:
    """Send stdout, stderr and logging to `path`; yield a `log(message)` function."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as handle:

        def log(message: str) -> None:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

        handler = logging.StreamHandler(handle)
        logging.getLogger().addHandler(handler)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield log
        except BaseException as error:
            log(f"failed: {type(error).__name__}: {error}")
            raise
        finally:
            logging.getLogger().removeHandler(handler)
