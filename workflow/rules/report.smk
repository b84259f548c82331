# The paper's tables with the published numbers beside ours, its claims measured, the deviations, and
# REPORT.md (prunebench.report.paper).


rule report:
    input:
        tables=rules.tables.output,
        latency=rules.latency.output if LATENCY["enabled"] else [],
        devices=rules.devices.output,
        attention=rules.attention.output if ATTENTION_RUNS else [],
        published=PUBLISHED_CSV,
    output:
        report(
            paths.report_file(RESULTS),
            caption="../report/REPORT.rst",
            category="Reproduction report",
        ),
    log:
        job_log("report"),
    benchmark:
        BENCHMARK["report"]
    conda:
        "../../environment.yml"
    params:
        # What the report shows of the study: a changed published: mapping writes it again.
        selectors=as_json([s.__dict__ for s in REPORT_SELECTORS]),
    script:
        "../scripts/report.py"
