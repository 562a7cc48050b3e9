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
        workload=lambda wildcards: wildcards.workload,
        strategy=lambda wildcards: wildcards.strategy,
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


if AMPLIFICATION_PAIR:

    # The amplification compares decode cost on two workloads: decoded in two jobs minutes
    # apart, a machine whose speed drifts between them moves the figure by more than its
    # interval says (docs/design.md, "Measurement conditions"). Their baselines are one job.
    ruleorder: generate_amplification_pair > generate

    rule generate_amplification_pair:
        """The unsuppressed runs of the amplification's short and long workloads with one
        model, in one job, their tasks interleaved evenly (generation.interleaved); each
        workload's outputs are those of its own generate job."""
        input:
            workload=expand(
                "results/workloads/{workload}.parquet", workload=AMPLIFICATION_PAIR
            ),
            model="resources/models/{model}",
            completions=replay_completions,
        output:
            records=[
                f"results/generations/{{model}}/{name}/{stopping.BASELINE}/rep{{rep}}.parquet"
                for name in AMPLIFICATION_PAIR
            ],
            tokens=[
                f"results/generations/{{model}}/{name}/{stopping.BASELINE}/rep{{rep}}.tokens.parquet"
                for name in AMPLIFICATION_PAIR
            ],
        log:
            "logs/generate/{model}/amplification-pair/rep{rep}.log",
        benchmark:
            "results/benchmarks/generate/{model}/amplification-pair/rep{rep}.tsv"
        threads: max(1, workflow.cores // GPU_SLOTS) if GPU_SLOTS else workflow.cores
        resources:
            measure=measured_alone,
            gpu_slot=gpu_slot,
        params:
            model=lookup(dpath="models/{model}", within=config),
            workload=AMPLIFICATION_PAIR,
            strategy=stopping.BASELINE,
            max_new_tokens=[
                config["workloads"][name]["max_new_tokens"]
                for name in AMPLIFICATION_PAIR
            ],
            prompt_budget=pair_prompt_budgets,
            energy=config["energy"],
            device=config["generation"]["device"],
            ignore_eos=config["generation"]["ignore_eos"],
            strategy_module=None,
            sandbox=None,
        script:
            "../workflow/scripts/generate.py"
