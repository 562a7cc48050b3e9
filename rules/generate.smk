rule generate:
    """Decode every task of one workload with one model and one stopping strategy,
    measuring prefill and decode energy per task on the model's own device, and that
    device's idle power after warm-up."""
    input:
        workload="results/workloads/{workload}.parquet",
        model="resources/models/{model}",
        completions=replay_completions,  # a replay model's file: editing it re-runs its jobs
    output:
        records=f"results/generations/{RUN}.parquet",
        tokens=f"results/generations/{RUN}.tokens.parquet",
    log:
        f"logs/generate/{RUN}.log",
    benchmark:
        f"results/benchmarks/generate/{RUN}.tsv"
    threads: workflow.cores
    resources:
        measure=1,  # two jobs measuring energy at once spoil both readings
    params:
        model=lookup(dpath="models/{model}", within=config),
        max_new_tokens=lookup(
            dpath="workloads/{workload}/max_new_tokens", within=config
        ),
        prompt_budget=prompt_budget,
        energy=config["energy"],
        device=config["generation"]["device"],
        ignore_eos=config["generation"]["ignore_eos"],
        # Only the oracle runs code while generating: only it re-runs when this changes.
        oracle=lambda wildcards: (
            config["evaluation"] if wildcards.strategy == "oracle" else None
        ),
    script:
        "../workflow/scripts/generate.py"
