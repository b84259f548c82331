# The study's figures (PDF and PNG), drawn from its tidy tables only.

FIGURES_DIR = paths.figures_dir(RESULTS, config["figures"])


rule figures:
    input:
        tables=rules.tables.output,
        latency=rules.latency.output if LATENCY["enabled"] else [],
    output:
        [
            f"{FIGURES_DIR}/{name}.{ext}"
            for name in paths.FIGURES
            for ext in paths.FIGURE_FORMATS
        ],
    log:
        job_log("figures"),
    benchmark:
        BENCHMARK["figures"]
    conda:
        "../../environment.yml"
    params:
        tables=lambda wc, input: os.path.dirname(input.tables[0]),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "prunebench figures {params.tables:q} --out {params.out:q} > {log:q} 2>&1"
