FIGURES = [
    "energy_per_phase",
    "decode_cost_vs_prompt",
    "token_cost_by_position",
    "savings_by_strategy",
    "energy_vs_accuracy",
    "amplification_vs_kv_cache",
]


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
