rule evaluate:
    """Run each completion against its task's tests in a limited process."""
    input:
        records=f"results/generations/{RUN}.parquet",
        workload="results/workloads/{workload}.parquet",
    output:
        f"results/scores/{RUN}.parquet",
    log:
        f"logs/evaluate/{RUN}.log",
    params:
        evaluation=config["evaluation"],
        prompt_style=lookup(dpath="models/{model}/prompt_style", within=config),
    script:
        "../workflow/scripts/evaluate.py"
