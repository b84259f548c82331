"""The report rule: the study's paper tables and REPORT.md (prunebench.report.paper.write_report)."""

import sys
from pathlib import Path

from prunebench.report.paper import write_report

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is the script's global)
print(write_report(snakemake.config, Path(snakemake.config["results"])), file=sys.stderr)  # noqa: F821
