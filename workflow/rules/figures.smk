# The study's figures (PDF and PNG), drawn from its tidy tables only.

FIGURES_DIR = paths.figures_dir(RESULTS, config["figures"])


rule figures:
    input:
        tables=rules.tables.output,
        latency=rules.latency.output if LATENCY["enabled"] else [],
        devices=rules.devices.output,
        attention=rules.attention.output if ATTENTION_RUNS else [],
    output:
        # The PNGs in Snakemake's HTML report (snakemake --report), captioned by workflow/report/<name>.rst.
        [
            (
                report(path, caption=f"../report/{name}.rst", category="Figures")
                if ext == "png"
                else path
            )
            for name in paths.FIGURES
            for ext in paths.FIGURE_FORMATS
            for path in [f"{FIGURES_DIR}/{name}.{ext}"]
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
