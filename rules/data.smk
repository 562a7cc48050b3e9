rule fetch_dataset:
    """Copy a dataset from where the config says (or generate the LongBench stand-in),
    after checking its sha256."""
    output:
        raw="resources/datasets/{dataset}/raw",
        manifest="resources/datasets/{dataset}/manifest.json",
    log:
        "logs/fetch_dataset/{dataset}.log",
    params:
        dataset=lookup(dpath="datasets/{dataset}", within=config),
    script:
        "../workflow/scripts/fetch_dataset.py"


rule build_workload:
    """Select a workload's tasks from its dataset, with their prompts, shots and tests."""
    input:
        dataset=workload_dataset,
    output:
        "results/workloads/{workload}.parquet",
    log:
        "logs/build_workload/{workload}.log",
    params:
        workload=lookup(dpath="workloads/{workload}", within=config),
        dataset=workload_dataset_spec,
    script:
        "../workflow/scripts/build_workload.py"
