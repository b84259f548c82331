# The dataset, downloaded or staged from the mirror and cached once, before any training job.


rule data:
    output:
        paths.data_record(RESULTS, "{dataset}"),
    log:
        job_log("data/{dataset}"),
    benchmark:
        BENCHMARK["data"]
    conda:
        "../../environment.yml"
    params:
        machine=machine_args,
        config=as_json(DATA),
        # Another version of the dataset readers reruns the data job and, through it, the study.
        readers=CACHE_FORMAT,
    shell:
        "echo {params.config:q} | prunebench data - --out {output:q} {params.machine} > {log:q} 2>&1"
