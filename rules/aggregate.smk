rule aggregate:
    """Summarize every run per model, workload and strategy."""
    input:
        generations=run_files(f"results/generations/{RUN}.parquet"),
        scores=run_files(f"results/scores/{RUN}.parquet"),
        idle="results/idle/power.parquet",
    output:
        summary="results/aggregate/summary.parquet",
        csv=report("results/aggregate/summary.csv", category="Tables"),
    log:
        "logs/aggregate.log",
    script:
        "../workflow/scripts/aggregate.py"
