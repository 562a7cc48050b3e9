"""Checks of the config that a JSON schema cannot express (references between sections)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """The config is inconsistent; the message names the key."""


def check(config: dict[str, Any]) -> None:
    """Raise ConfigError naming the first key that refers to something undefined."""
    for name, workload in config["workloads"].items():
        if workload["dataset"] not in config["datasets"]:
            raise ConfigError(
                f"workloads.{name}.dataset: {workload['dataset']!r} is not a key of datasets "
                f"(defined: {sorted(config['datasets'])})"
            )
        if "limit" in workload and "task_ids" in workload:
            raise ConfigError(f"workloads.{name}: give either limit or task_ids, not both")
