# The study's tidy tables, from every run directory, and the latency of every final model.

RUN_DIRS = [run_dir(r.model, r.experiment, r.seed) for r in RUNS]
DENSE_DIRS = sorted({dense_dir(r.model, r.rewind_epoch, r.seed) for r in RUNS})
LATENCY = config.get("latency") or {}


# Every file the tables read is an input; the rest of a run (config.yaml, run.json, final.pt)
# is checked against the checksums in its summary.json.
rule tables:
    input:
        [
            f"{d}/{name}"
            for d in RUN_DIRS
            for name in ("summary.json", "rounds.csv", "layers.csv")
        ],
        [f"{d}/dense.json" for d in DENSE_DIRS],
    output:
        [
            f"{RESULTS}/tables/{name}.csv"
            for name in (
                "rounds",
                "layers",
                "runs",
                "dense",
                "summary",
                "paired",
                "comparison",
            )
        ],
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../../environment.yml"
    params:
        runs=RUN_DIRS,
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "prunebench tables {params.runs:q} --out {params.out:q} > {log:q} 2>&1"


# Runs last (after every training job and the tables), so locally it has the machine to itself:
# latency measured beside other jobs would measure them too.
rule latency:
    input:
        models=[f"{d}/final.pt" for d in RUN_DIRS],
        after=rules.tables.output,
    output:
        f"{RESULTS}/tables/latency.csv",
    log:
        f"{RESULTS}/logs/latency.log",
    conda:
        "../../environment.yml"
    params:
        runs=RUN_DIRS,
        threads=" ".join(str(n) for n in LATENCY.get("threads", [1])),
        warmup=LATENCY.get("warmup", 10),
        repeats=LATENCY.get("repeats", 50),
    shell:
        "prunebench latency {params.runs:q} --out {output:q} --threads {params.threads}"
        " --warmup {params.warmup} --repeats {params.repeats} > {log:q} 2>&1"
