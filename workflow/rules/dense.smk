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
