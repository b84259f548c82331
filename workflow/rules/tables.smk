# The study's tidy tables, from every run directory, and the latency of every final model.

RUN_DIRS = [run_dir(r.model, r.experiment, r.seed) for r in RUNS]
DENSE_DIRS = sorted({dense_dir(r.model, r.seed, r.dense_variant) for r in RUNS})
LATENCY = config["latency"]  # with the schema's defaults filled in
EXPORT = config["export"]
DEVICE_RESULTS = config["device_results"]


# Every file the tables read is an input; the rest of a run (config.yaml, run.json, final.pt)
# is checked against the checksums in its summary.json.
rule tables:
    input:
        [
            os.path.join(d, name)
            for d in RUN_DIRS
            for name in (paths.SUMMARY, paths.ROUNDS, paths.LAYERS)
        ],
        [os.path.join(d, paths.DENSE_RECORD) for d in DENSE_DIRS],
    output:
        [
            (
                report(path, caption="../report/table.rst", category="Tables")
                if name in ("runs", "summary", "paired", "comparison")
                else path
            )
            for name in paths.TABLES
            for path in [paths.table_file(RESULTS, name)]
        ],
    log:
        job_log("tables"),
    benchmark:
        BENCHMARK["tables"]
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
        models=[os.path.join(d, paths.FINAL) for d in RUN_DIRS],
        after=rules.tables.output,
    output:
        paths.table_file(RESULTS, paths.LATENCY_TABLE),
    log:
        job_log("latency"),
    benchmark:
        BENCHMARK["latency"]
    conda:
        "../../environment.yml"
    params:
        runs=RUN_DIRS,
        # The study's latency settings; unset ones take prunebench latency's defaults.
        options=" ".join(
            f"--{key} "
            + " ".join(map(str, value if isinstance(value, list) else [value]))
            for key, value in LATENCY.items()
            if key != "enabled"
        ),
    shell:
        "prunebench latency {params.runs:q} --out {output:q} {params.options} > {log:q} 2>&1"


# Every run's dense and chosen rounds as TorchScript (and ONNX) files with a manifest.json: what
# workflow/scripts/device_bench.py times on a Raspberry Pi or any other device.
rule export:
    input:
        [os.path.join(d, paths.SUMMARY) for d in RUN_DIRS],
    output:
        os.path.join(paths.export_dir(RESULTS), "manifest.json"),
    log:
        job_log("export"),
    benchmark:
        BENCHMARK["export"]
    conda:
        "../../environment.yml"
    params:
        runs=RUN_DIRS,
        out=lambda wc, output: os.path.dirname(output[0]),
        rounds=" ".join(map(str, EXPORT["rounds"])),
        formats=" ".join(EXPORT["formats"]),
    shell:
        "prunebench export {params.runs:q} --out {params.out:q} --rounds {params.rounds}"
        " --format {params.formats} > {log:q} 2>&1"


# The host's latency.csv and the CSVs device_bench.py wrote on devices (study key device_results),
# one table with a device column: what the speedup and throughput figures draw.
rule devices:
    input:
        host=rules.latency.output if LATENCY["enabled"] else [],
        csvs=DEVICE_RESULTS,
        runs=[os.path.join(d, paths.SUMMARY) for d in RUN_DIRS],
    output:
        paths.table_file(RESULTS, paths.DEVICES_TABLE),
    log:
        job_log("devices"),
    benchmark:
        BENCHMARK["devices"]
    conda:
        "../../environment.yml"
    params:
        runs=RUN_DIRS,
        host=lambda wc, input: f"--host {shlex.quote(input.host[0])}" if input.host else "",
    shell:
        "prunebench devices {input.csvs:q} {params.host} --runs {params.runs:q} --out {output:q} > {log:q} 2>&1"


# Per-filter attention (Figures 3, 5 and 9) of the first seed's runs under an AAP adaptive
# policy: their dense model and their result, over real and random batches.
ATTENTION_RUNS = [
    run_dir(r.model, r.experiment, r.seed)
    for r in RUNS
    if r.adaptive and r.seed == FIRST_SEED
]


rule attention:
    input:
        [os.path.join(d, paths.SUMMARY) for d in ATTENTION_RUNS],
    output:
        attention=paths.table_file(RESULTS, paths.ATTENTION_TABLE),
        maps=paths.table_file(RESULTS, paths.MAPS_TABLE),
    log:
        job_log("attention"),
    benchmark:
        BENCHMARK["attention"]
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        gpu=GPUS,
    params:
        runs=ATTENTION_RUNS,
        machine=machine_args,
    shell:
        "prunebench attention {params.runs:q} --out {output.attention:q} --maps {output.maps:q}"
        " {params.machine} > {log:q} 2>&1"


# What every job cost, from Snakemake's benchmark records: one row per job (its rule and
# wildcards, wall and CPU seconds, peak memory). Runs last: it reads every other job's record.
rule jobs:
    input:
        [job["benchmark"] for job in benchmarked_jobs()],
    output:
        paths.table_file(RESULTS, paths.JOBS_TABLE),
    log:
        job_log("jobs"),
    conda:
        "../../environment.yml"
    params:
        jobs=benchmarked_jobs(),
    script:
        "../scripts/jobs_table.py"
