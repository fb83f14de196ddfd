"""`python tests/slurm_snakemake.py ARGS` = `python -m snakemake ARGS` with the Slurm executor
plugin's status checks at most ITLAB_SLURM_MAX_POLL seconds apart (default 1), for the Slurm
tests on the local test cluster only (profiles/slurm is untouched).

Why: snakemake-executor-plugin-slurm 2.8.0 waits 10 s longer after every status check that
finds no job finished, up to 180 s (both hard-coded). On a real cluster that spares slurmctld;
on the test cluster it made a chain of short jobs wait for polls rather than for Slurm: in a
clean-clone CI run most of the 193 s of the chain test. The plugin itself still submits, polls
(squeue), reports failures and cancels exactly as in production; only the sleep between polls
is capped.
"""

import os
import sys

import snakemake_executor_plugin_slurm as plugin
from snakemake.cli import main

MAX_POLL = float(os.environ.get("ITLAB_SLURM_MAX_POLL", "1"))
_check_active_jobs = plugin.Executor.check_active_jobs


async def check_active_jobs(self, active_jobs):
    async for job in _check_active_jobs(self, active_jobs):
        yield job
    # the plugin has just set its next interval (+10 s when nothing finished): cap it
    self.next_seconds_between_status_checks = min(self.next_seconds_between_status_checks, MAX_POLL)


plugin.Executor.check_active_jobs = check_active_jobs

if __name__ == "__main__":
    sys.exit(main())
