"""Helpers for the thin rule scripts: per-job logs and clear failures."""

from __future__ import annotations

import contextlib
import sys
import traceback


@contextlib.contextmanager
def logged(smk):
    """Send stdout/stderr of the job to its log file; a failure is logged, then re-raised."""
    if not smk.log:
        yield
        return
    with open(smk.log[0], "w") as fh:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            yield
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            fh.flush()
            sys.stdout, sys.stderr = old


@contextlib.contextmanager
def one_line_errors():
    """A bad id, revision, token, split or template ends the job with one line naming the
    config key (in the log and on the terminal), not a traceback."""
    from itlab.errors import HubError

    try:
        yield
    except HubError as err:
        print(f"itlab: error: {err}", file=sys.stdout, flush=True)
        print(f"itlab: error: {err}", file=sys.__stderr__, flush=True)
        raise SystemExit(1) from None
