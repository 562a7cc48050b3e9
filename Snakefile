"""llmenergy: phase-level energy of LLM inference on code benchmarks."""


configfile: "config/config.yaml"


# The image every job runs in under --use-apptainer (profiles/apptainer); containers/build.sh
# makes it from containers/Dockerfile. Found beside this Snakefile whatever the working directory.
container: f"{workflow.basedir}/containers/llmenergy.sif"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/babble.smk"
include: "rules/aggregate.smk"
include: "rules/figures.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report/report.html",
