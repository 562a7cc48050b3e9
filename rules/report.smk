rule report_html:
    """Render the single self-contained HTML report."""
    input:
        summary="results/aggregate/summary.parquet",
        savings="results/aggregate/savings.parquet",
        babble="results/aggregate/babble.parquet",
        claims="results/aggregate/claims.parquet",
        amplification="results/aggregate/amplification.parquet",
        shapes="results/aggregate/shapes.parquet",
        conditions="results/aggregate/conditions.parquet",
        figures=expand("results/figures/{name}.png", name=FIGURES),
        models=expand("resources/models/{model}", model=MODELS),
        datasets=expand(
            "resources/datasets/{dataset}/manifest.json",
            dataset=sorted({config["workloads"][w]["dataset"] for w in WORKLOADS}),
        ),
        template=REPO / "reports" / "report.html.j2",
        references=reference_files(),
    output:
        "results/report/report.html",
    log:
        "logs/report.log",
    params:
        config=config,
        reference=REFERENCE,
    script:
        "../workflow/scripts/report.py"
