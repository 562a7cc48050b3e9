rule evaluate:
    """Score each completion: HumanEval tests run in the sandbox, one check per core;
    LongBench answers by code similarity."""
    input:
        records=f"results/generations/{RUN}.parquet",
        workload="results/workloads/{workload}.parquet",
    output:
        f"results/scores/{RUN}.parquet",
    log:
        f"logs/evaluate/{RUN}.log",
    threads: workflow.cores
    params:
        evaluation=lookup(dpath="evaluation", within=config),
        prompt_style=lookup(dpath="models/{model}/prompt_style", within=config),
        # Random weights write noise: their outputs are not scored (see outputs_evaluated).
        scored=lambda wildcards: configuration.outputs_evaluated(
            config, wildcards.model
        ),
    script:
        "../workflow/scripts/evaluate.py"
