"""Rules evaluate_model and evaluate_shard: (task, condition) pairs of one model in one lm-eval session."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import torch  # noqa: E402

from itlab import hub  # noqa: E402
from itlab.evaluate import run  # noqa: E402
from itlab.io import write_table  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    hub.offline()  # hub models and data sets come from the mirror only
    # and what harness tasks load at run time (code_eval, punkt_tab)
    hub.use_assets(hub.harness_asset_dirs(snakemake.config, snakemake.params.harness_data),  # noqa: F821
                   snakemake.config["mirror"]["standin"])  # noqa: F821
    s = snakemake.params.spec  # noqa: F821
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    scores = run(s["model_dir"], [tuple(i) for i in s["items"]], s["files"], s["k_shot"], s["batch_size"],
                 s["max_new_tokens"], s["max_items_per_task"], snakemake.output.scores.rsplit("/", 1)[0],  # noqa: F821
                 trust_remote_code=snakemake.params.trust_remote_code,  # noqa: F821
                 lm_eval_tasks=s["lm_eval_tasks"], allow_code_execution=s["allow_code_execution"],
                 gpus=snakemake.resources.gpu, metrics=s.get("metrics"),  # noqa: F821
                 answer_format=s["answer_format"], seed=s["seed"],
                 device="cuda" if snakemake.params.device == "cuda" else "cpu",  # noqa: F821
                 harness_data=snakemake.params.harness_data)  # noqa: F821
    write_table(snakemake.output.scores, scores)  # noqa: F821
    print(scores.to_string())
