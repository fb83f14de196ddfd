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
