# prunebench: the reproduction as a Snakemake workflow.
#   snakemake --cores 2                                   (configs/default.yaml)
#   snakemake --cores 2 --configfile configs/smoke.yaml   (another study)
import os

from snakemake.utils import min_version

min_version("9.0")


# A --configfile replaces the default study instead of being merged into it; --config
# overrides apply on top of whichever study runs.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "configs/default.yaml")


# snakemake --report report.html: the figures, tables and REPORT.md in one self-contained page.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.tables.output,
        rules.latency.output if LATENCY["enabled"] else [],
        rules.export.output if EXPORT["enabled"] else [],
        rules.devices.output,
        rules.figures.output,
        rules.jobs.output,
        rules.report.output,
