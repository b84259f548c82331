# The study's tidy tables, from every run directory.


rule tables:
    input:
        [f"{run_dir(m, e, s)}/summary.json" for m, e, s, _ in RUNS],
    output:
        [
            f"{RESULTS}/tables/{name}.csv"
            for name in ("rounds", "layers", "runs", "dense", "summary")
        ],
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../../environment.yml"
    params:
        runs=[run_dir(m, e, s) for m, e, s, _ in RUNS],
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "prunebench tables {params.runs} --out {params.out} > {log} 2>&1"
