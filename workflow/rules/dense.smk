# The dense model of each (model, rewind epoch, seed), shared by every experiment pruning it.


rule dense:
    input:
        f"{RESULTS}/data/{DATA['data']['dataset']}.json",
    output:
        f"{RESULTS}/dense/{{model}}/k{{k}}/seed{{seed}}/dense.json",
    log:
        f"{RESULTS}/logs/dense/{{model}}-k{{k}}-seed{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        gpu=GPUS,
    params:
        machine=machine_args,
        config=lambda wc: as_json(study.dense_config(config, wc.model, wc.k, wc.seed)),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "echo {params.config:q} | prunebench dense - --out {params.out:q}"
        " {params.machine} --replace-stale > {log:q} 2>&1"
