rule babble_metrics:
    """Find where each unsuppressed output's answer was complete (by syntax and by tests)
    and how much was written after it."""
    input:
        records="results/generations/{model}/{workload}/none/rep{rep}.parquet",
        workload="results/workloads/{workload}.parquet",
        model="resources/models/{model}",
    output:
        "results/babble/{model}/{workload}/rep{rep}.parquet",
    log:
        "logs/babble_metrics/{model}/{workload}/rep{rep}.log",
    threads: workflow.cores
    params:
        evaluation=lookup(dpath="evaluation", within=config),
        by_tests=config["babble"]["tests"],
        prompt_style=lookup(dpath="models/{model}/prompt_style", within=config),
    script:
        "../workflow/scripts/babble_metrics.py"
