"""itlab: reproducing five studies of instruction tuning as one Snakemake DAG.

The Snakefile and scripts are thin; everything that can be unit-tested lives here.
"""

__version__ = "0.1.0"
