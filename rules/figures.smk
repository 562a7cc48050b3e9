rule figures:
    """Draw the energy-per-phase figure from the summary."""
    input:
        summary="results/aggregate/summary.parquet",
    output:
        energy_per_phase=report(
            "results/figures/energy_per_phase.png", category="Figures"
        ),
    log:
        "logs/figures.log",
    script:
        "../workflow/scripts/figures.py"
