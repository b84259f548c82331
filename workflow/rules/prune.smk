# One job per pruning run. Its per-round state lives in <run>/state, which is not a declared
# output, so an interrupted job resumes after its last finished round. A `matched` run also
# takes its reference run's final.pt (--reference). AAP runs first wait for `preflight`. Every run
# records the rounds it trains in shared_rounds/ and reuses those another run trained from the
# same inputs; a run repeating an earlier experiment's first rounds waits for it (`after`).


# Per model x AAP experiment, on the first seed's trained dense model: do the thresholds of the
# first rounds remove channels? A failure stops the study before its AAP runs spend their budget.
rule preflight:
    input:
        dense=dense_of_preflight,
    output:
        paths.preflight_report(RESULTS, "{model}", "{experiment}"),
    log:
        job_log("preflight/{model}-{experiment}"),
    benchmark:
        BENCHMARK["preflight"]
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        machine=machine_args,
        config=lambda wc: as_json(
            study.run_config(config, wc.model, wc.experiment, FIRST_SEED)
        ),
        dense=lambda wc, input: os.path.dirname(input.dense),
    shell:
        "echo {params.config:q} | prunebench preflight - --dense {params.dense:q}"
        " {params.machine} --out {output:q} > {log:q} 2>&1"


rule prune:
    input:
        dense=dense_of_run,
        reference=reference_of_run,
        preflight=preflight_of_run,
        after=after_of_run,
    output:
        rounds=os.path.join(RUN_DIR, paths.ROUNDS),
        layers=os.path.join(RUN_DIR, paths.LAYERS),
        summary=os.path.join(RUN_DIR, paths.SUMMARY),
        final=os.path.join(RUN_DIR, paths.FINAL),
    log:
        job_log("runs/{model}-{experiment}-seed{seed}"),
    benchmark:
        BENCHMARK["prune"]
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        gpu=GPUS,
    params:
        machine=machine_args,
        config=lambda wc: as_json(
            study.run_config(config, wc.model, wc.experiment, wc.seed)
        ),
        out=lambda wc, output: os.path.dirname(output.rounds),
        dense=lambda wc, input: os.path.dirname(input.dense),
        reference=lambda wc, input: (
            ["--reference", input.reference] if input.reference else []
        ),
        shared=paths.shared_rounds_dir(RESULTS),
    shell:
        "echo {params.config:q} | prunebench run - --out {params.out:q} --dense {params.dense:q}"
        " --experiment {wildcards.experiment:q} {params.reference:q} --shared-rounds {params.shared:q}"
        " {params.machine} --replace-stale > {log:q} 2>&1"
