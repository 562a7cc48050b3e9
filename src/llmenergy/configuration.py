"""Checks of the config that a JSON schema cannot express (references between sections)."""

from __future__ import annotations

from typing import Any

from llmenergy import datasets, models, stopping
from llmenergy.datasets import STANDIN

STANDIN_MARK = "standin"


class ConfigError(ValueError):
    """The config is inconsistent; the message names the key."""


def check(config: dict[str, Any]) -> None:
    """Raise ConfigError naming the first key that refers to something undefined, or mixes
    the LongBench stand-in with real LongBench."""
    for name, dataset in config["datasets"].items():
        stdlib = dataset["source"]["kind"] == "stdlib"
        if stdlib != (dataset["format"] == STANDIN):
            raise ConfigError(
                f"datasets.{name}: the {STANDIN} format comes from source kind stdlib, "
                f"and source kind stdlib makes only the {STANDIN} format"
            )
        if stdlib:
            try:
                datasets.standin_draw(dataset["source"])
            except datasets.DatasetError as error:
                raise ConfigError(f"datasets.{name}.source: {error}") from None
    for name, workload in config["workloads"].items():
        if workload["dataset"] not in config["datasets"]:
            raise ConfigError(
                f"workloads.{name}.dataset: {workload['dataset']!r} is not a key of datasets "
                f"(defined: {sorted(config['datasets'])})"
            )
        if "limit" in workload and "task_ids" in workload:
            raise ConfigError(f"workloads.{name}: give either limit or task_ids, not both")
        fmt = datasets.format_of(config, name)
        if workload.get("shots", 0) and not fmt.takes_shots:
            raise ConfigError(f"workloads.{name}.shots: shots exist for HumanEval tasks only")
        # The stand-in's numbers must never pass for LongBench's: its workloads say so.
        if fmt.name == STANDIN and STANDIN_MARK not in name:
            raise ConfigError(
                f"workloads.{name}: it runs the LongBench stand-in ({workload['dataset']!r}), "
                f"so its name must contain {STANDIN_MARK!r} (e.g. {STANDIN}-cu)"
            )
        if fmt.name != STANDIN and STANDIN_MARK in name:
            raise ConfigError(
                f"workloads.{name}: only workloads of a {STANDIN} dataset may be named "
                f"{STANDIN_MARK!r}"
            )
    pair = (config.get("analysis") or {}).get("amplification") or {}
    for end in ("short", "long"):
        if end in pair and pair[end] not in config["workloads"]:
            raise ConfigError(
                f"analysis.amplification.{end}: {pair[end]!r} is not a key of workloads "
                f"(defined: {sorted(config['workloads'])})"
            )
    if pair and pair.get("short") == pair.get("long"):
        raise ConfigError("analysis.amplification: short and long name the same workload")


def strategies_of(config: dict[str, Any], workload: str, model: str | None = None) -> list[str]:
    """The stopping strategies a workload runs: its own list, else the global one; for a model
    whose outputs are not evaluated only `none` (there is no answer to stop at in noise)."""
    if model is not None and not outputs_evaluated(config, model):
        return [stopping.BASELINE]
    return list(config["workloads"][workload].get("strategies") or config["strategies"])


def outputs_evaluated(config: dict[str, Any], model: str) -> bool:
    """Whether a model's outputs are scored, analysed for babbling and cut by strategies: all
    but random-weight models, whose text is noise, unless their source sets
    `evaluate_outputs` (to exercise those stages, as tests/configs/tiny.yaml does)."""
    spec = config["models"][model]
    return not models.source_kind(spec).seeded or bool(spec["source"].get("evaluate_outputs"))


def evaluated_models(config: dict[str, Any]) -> list[str]:
    """The models whose outputs are evaluated (outputs_evaluated), in config order."""
    return [name for name in config["models"] if outputs_evaluated(config, name)]


def load_strategies(config: dict[str, Any]) -> None:
    """Import the config's own stopping strategies (strategy_modules), naming the key."""
    try:
        stopping.load_modules(config.get("strategy_modules") or [])
    except stopping.StrategyError as error:
        raise ConfigError(str(error)) from None


def check_strategies(config: dict[str, Any]) -> None:
    """Every workload runs the `none` baseline and only registered strategies, and a strategy
    that needs tests only where tasks have them; a same-tokens control names a registered
    strategy other than the baseline."""
    key = "energy.same_tokens_control"
    for name in config.get("energy", {}).get("same_tokens_control", []):
        if name == stopping.BASELINE:
            raise ConfigError(f"{key}: the baseline {name!r} stops nothing, so has no control")
        try:
            stopping.get(name)
        except stopping.StrategyError as error:
            raise ConfigError(f"{key}: {error}") from None
    for name, workload in config["workloads"].items():
        strategies = strategies_of(config, name)
        key = f"workloads.{name}.strategies" if "strategies" in workload else "strategies"
        if stopping.BASELINE not in strategies:
            raise ConfigError(
                f"{key}: must contain {stopping.BASELINE!r}, the baseline of every strategy"
            )
        try:
            needing = [s for s in strategies if stopping.get(s).needs_tests]
        except stopping.StrategyError as error:
            raise ConfigError(f"{key}: {error}") from None
        fmt = datasets.format_of(config, name)
        if needing and not fmt.has_tests:
            raise ConfigError(
                f"{key}: {', '.join(map(repr, needing))} runs the task's tests, and {name} "
                f"({fmt.name}) has none; give workloads.{name}.strategies without it"
            )
