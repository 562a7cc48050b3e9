rule prepare_model:
    """Make a model loadable offline and fast: dequantize, build or download it once."""
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    params:
        source=lookup(dpath="models/{model}/source", within=config),
    script:
        "../workflow/scripts/prepare_model.py"
