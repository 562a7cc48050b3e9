rule report_html:
    """Render the single self-contained HTML report."""
    input:
        summary="results/aggregate/summary.parquet",
        energy_per_phase="results/figures/energy_per_phase.png",
        idle="results/idle/power.parquet",
        models=expand("resources/models/{model}", model=MODELS),
        datasets=expand(
            "resources/datasets/{dataset}/manifest.json",
            dataset=sorted({config["workloads"][w]["dataset"] for w in WORKLOADS}),
        ),
        template=REPO / "reports" / "report.html.j2",
    output:
        "results/report/report.html",
    log:
        "logs/report.log",
    params:
        config=config,
    script:
        "../workflow/scripts/report.py"
