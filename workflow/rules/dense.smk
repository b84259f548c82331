# The dense model of each (model, seed), shared by every experiment pruning it, with a rewind
# snapshot after every epoch the study's experiments rewind to.


rule dense:
    input:
        paths.data_record(RESULTS, DATA["data"]["dataset"]),
    output:
        os.path.join(dense_dir("{model}", "{seed}"), paths.DENSE_RECORD),
    log:
        job_log("dense/{model}-seed{seed}"),
    benchmark:
        BENCHMARK["dense"]
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        gpu=GPUS,
    params:
        machine=machine_args,
        config=lambda wc: as_json(study.dense_config(config, wc.model, wc.seed)),
        rewind_epochs=lambda wc: " ".join(map(str, study.rewind_epochs(RUNS, wc.model))),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "echo {params.config:q} | prunebench dense - --out {params.out:q} --rewind-epochs {params.rewind_epochs}"
        " {params.machine} --replace-stale > {log:q} 2>&1"


# The dense model of a method with its own pre-pruning training (Method.dense_loss: network
# slimming's sparsity training), per (model, variant, seed): the variant names the method and
# its options; the job's config carries that method's prune section.
rule method_dense:
    input:
        paths.data_record(RESULTS, DATA["data"]["dataset"]),
    output:
        os.path.join(dense_dir("{model}", "{seed}", "{variant}"), paths.DENSE_RECORD),
    log:
        job_log("dense/{model}/{variant}-seed{seed}"),
    benchmark:
        BENCHMARK["method_dense"]
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        gpu=GPUS,
    params:
        machine=machine_args,
        config=lambda wc: as_json(
            study.dense_config(
                config,
                wc.model,
                wc.seed,
                VARIANT_EXPERIMENT[(wc.model, wc.variant)],
            )
        ),
        rewind_epochs=lambda wc: " ".join(
            map(str, study.rewind_epochs(RUNS, wc.model, wc.variant))
        ),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "echo {params.config:q} | prunebench dense - --out {params.out:q} --rewind-epochs {params.rewind_epochs}"
        " {params.machine} --replace-stale > {log:q} 2>&1"
