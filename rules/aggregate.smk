rule aggregate:
    """Summarize every run per model, workload and strategy; pair each strategy with the
    baseline; summarize babbling; put each model's shape beside its energy."""
    input:
        generations=run_files(f"results/generations/{RUN}.parquet"),
        tokens=run_files(f"results/generations/{RUN}.tokens.parquet"),
        scores=run_files(f"results/scores/{RUN}.parquet"),
        babble=expand(
            "results/babble/{model}/{workload}/rep{rep}.parquet",
            model=EVALUATED_MODELS,
            workload=WORKLOADS,
            rep=REPS,
        ),
        claims=REPO / "config" / "claims.yaml",
        models=expand("resources/models/{model}", model=SHAPED_MODELS),
    output:
        summary="results/aggregate/summary.parquet",
        savings="results/aggregate/savings.parquet",
        babble="results/aggregate/babble.parquet",
        amplification="results/aggregate/amplification.parquet",
        shapes="results/aggregate/shapes.parquet",
        claims="results/aggregate/claims.parquet",
        conditions="results/aggregate/conditions.parquet",
        csv=report("results/aggregate/summary.csv", category="Tables"),
    log:
        "logs/aggregate.log",
    params:
        babble=config["babble"],
        eos_ignored=config["generation"]["ignore_eos"],
        task_choice=claims.task_choice(config["workloads"]),
        analysis=config.get("analysis", {}),
        between_runs=BETWEEN_RUNS,
        runs=RUNS,  # the keys of each tokens file, in the same order
        workload_kinds=workload_kinds(),
        model_kinds={name: m["source"]["kind"] for name, m in config["models"].items()},
        shaped_models=SHAPED_MODELS,
        dtypes={name: m.get("dtype", "float32") for name, m in config["models"].items()},
    script:
        "../workflow/scripts/aggregate.py"
