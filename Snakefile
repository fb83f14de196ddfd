# itlab: data synthesis -> base models -> DeepSpeed tuning -> evaluation -> statistics.
# The config is validated (schema + cross-key checks) before any job is scheduled.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/hub.smk"


# The report's first page: the workflow's description with the scorecard (rule make_scorecard).
report: report_front_page()


# Optional Apptainer image (config key `container`): with --sdm conda apptainer each rule's
# conda env is built and run inside it (README "Running on Slurm").
container: config.get("container") or None


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/tune.smk"
include: "rules/evaluate.smk"
include: "rules/analyze.smk"
include: "rules/teachers.smk"
include: "rules/interpret.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


onsuccess:
    print_summaries()
