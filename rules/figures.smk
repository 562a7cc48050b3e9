FIGURES = list(figures.FIGURES)


rule figures:
    """Draw the report's figures (PNG and SVG) from the aggregated tables."""
    input:
        summary="results/aggregate/summary.parquet",
        savings="results/aggregate/savings.parquet",
        amplification="results/aggregate/amplification.parquet",
        shapes="results/aggregate/shapes.parquet",
        generations=run_files(f"results/generations/{RUN}.parquet"),
        tokens=expand(
            "results/generations/{model}/{workload}/none/rep{rep}.tokens.parquet",
            model=MODELS,
            workload=WORKLOADS,
            rep=REPS,
        ),
    output:
        **{
            name: report(f"results/figures/{name}.png", category="Figures")
            for name in FIGURES
        },
        svg=expand("results/figures/{name}.svg", name=FIGURES),
    log:
        "logs/figures.log",
    params:
        token_runs=[
            {"model": m, "workload": w, "rep": r}
            for m in MODELS
            for w in WORKLOADS
            for r in REPS
        ],
    script:
        "../workflow/scripts/figures.py"
