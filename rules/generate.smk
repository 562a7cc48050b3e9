rule generate:
    """Decode every task of one workload with one model and one stopping strategy,
    measuring prefill and decode energy per task on the model's own device, and that
    device's idle power after warm-up."""
    input:
        workload="results/workloads/{workload}.parquet",
        model="resources/models/{model}",
        completions=replay_completions,  # a replay model's file: editing it re-runs its jobs
        strategy=strategy_file,  # a config's own strategy's file, likewise
    output:
        records=f"results/generations/{RUN}.parquet",
        tokens=f"results/generations/{RUN}.tokens.parquet",
    log:
        f"logs/generate/{RUN}.log",
    benchmark:
        f"results/benchmarks/generate/{RUN}.tsv"
    # One job per GPU shares the cores out; otherwise one job at a time takes them all.
    threads: max(1, workflow.cores // GPU_SLOTS) if GPU_SLOTS else workflow.cores
    resources:
        # Two jobs measuring one device at once spoil both readings: a job on a GPU of its
        # own (gpu_slots) needs no `measure` unit; any other job holds the only one.
        measure=measured_alone,
        gpu_slot=gpu_slot,
    params:
        model=lookup(dpath="models/{model}", within=config),
        max_new_tokens=lookup(
            dpath="workloads/{workload}/max_new_tokens", within=config
        ),
        prompt_budget=prompt_budget,
        energy=config["energy"],
        device=config["generation"]["device"],
        ignore_eos=config["generation"]["ignore_eos"],
        strategy_module=strategy_module,
        sandbox=strategy_sandbox,
    script:
        "../workflow/scripts/generate.py"
