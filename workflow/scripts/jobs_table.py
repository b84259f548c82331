"""The jobs table of a study: Snakemake's benchmark record of every job, one row per job.

Columns: ``rule`` and the job's wildcards (``dataset``, ``model``, ``variant`` (a method's own dense
model), ``experiment``, ``seed``, empty where the rule has none), ``wall_s`` (Snakemake's ``s``),
``cpu_s`` (``cpu_time``: user + system seconds of the job's processes), ``max_rss_mb``, ``mean_load``
(CPU load in percent of one core).
"""

import sys

import pandas as pd

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is the script's global)

WILDCARDS = ["dataset", "model", "variant", "experiment", "seed"]
rows = []
for job in snakemake.params.jobs:  # noqa: F821
    record = pd.read_csv(job["benchmark"], sep="\t", na_values=["-", "NA"]).iloc[-1]  # the last repeat of the job
    rows.append(
        {
            "rule": job["rule"],
            **{key: job.get(key) for key in WILDCARDS},
            "wall_s": record["s"],
            "cpu_s": record["cpu_time"],
            "max_rss_mb": record["max_rss"],
            "mean_load": record["mean_load"],
        }
    )
table = pd.DataFrame(rows)
table["seed"] = table["seed"].astype("Int64")
table.to_csv(snakemake.output[0], index=False)  # noqa: F821
