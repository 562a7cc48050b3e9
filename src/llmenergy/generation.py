"""Greedy decoding with a KV cache, timing and metering prefill and decode apart.

Prefill is the forward pass over the prompt that builds the KV cache and yields the first
output token. Decode is every later forward pass, one token each, from the second output token
to the last. Per-token timestamps are kept for every output token.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from llmenergy import conditions, energy, joules, models, stopping, workloads
from llmenergy.conditions import Conditions
from llmenergy.detokenizer import IncrementalDetokenizer
from llmenergy.energy import Meter, Reading
from llmenergy.generation_settings import GenerationSettings
from llmenergy.joules import Joules
from llmenergy.models import LoadedModel


@dataclass
class Decoded:
    """What one greedy decoding produced, with its phase timings and energy readings.

    `token_times_s[i]` is when output token i was known, in seconds from the start of a
    single prefill pass; `token_energies_j[i]` its energy where a power timeline exists.
    `prefill_energy` is one pass's, `decode_energy` the whole decode's.
    """

    prompt_tokens: int
    token_ids: list[int]
    stop_reason: str
    token_times_s: list[float]
    token_energies_j: list[float | None]
    prefill_s: float
    decode_s: float
    prefill_energy: Joules
    decode_energy: Joules
    prefill_repeats: int
    flags: list[str] = field(default_factory=list)
    task_repeats: int = 0  # whole-task passes of the window decode was found from, if any
    kept_text: str | None = None  # the output a stopping strategy kept, when it cut
    conditions: Conditions = conditions.UNREAD  # what else ran beside its windows


@dataclass
class RunResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)


def encode(
    loaded: LoadedModel, task: dict[str, Any] | str, style: str, budget: int | None = None
) -> torch.Tensor:
    """The prompt's token ids on the model's device: the task (a task-table row, or just its
    prompt text) rendered in `style` and cut to `budget` tokens, as workloads.prompt_and_ids."""
    row = {"prompt": task} if isinstance(task, str) else task
    ids = workloads.encode_prompt(loaded.tokenizer, row, style, budget)
    return prompt_tensor(loaded, ids, str(row.get("task_id", "?")))


def prompt_tensor(loaded: LoadedModel, ids: list[int], task_id: str) -> torch.Tensor:
    """Prompt ids as a batch of one on the model's device, within its vocabulary
    (models.fit_to_vocabulary)."""
    ids = models.fit_to_vocabulary(loaded, ids, task_id)
    return torch.tensor([ids], device=loaded.device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Prefill:
    """One metered prefill: the model output of its last pass, and per-pass time and energy."""

    output: Any
    first_token: torch.Tensor
    seconds: float
    energy: Joules
    repeats: int
    reading: Reading
    flags: list[str]


def repeats_for(window_s: float, repeats: int, min_window_s: float, max_repeats: int) -> int:
    """How many prefill passes make a window of at least `min_window_s` (with 20% margin)."""
    if window_s >= min_window_s:
        return repeats
    per_pass = max(window_s / repeats, 1e-6)
    return min(max_repeats, max(repeats + 1, math.ceil(1.2 * min_window_s / per_pass)))


def measure_prefill(
    loaded: LoadedModel, input_ids: torch.Tensor, meter: Meter, max_repeats: int
) -> Prefill:
    """Run the prompt's forward pass in one metered window, repeated until the window is long
    enough for the meter; report time and energy per pass."""
    model, device = loaded.model, loaded.device
    repeats = 1
    while True:
        _synchronize(device)
        meter.begin("prefill")
        start = time.perf_counter()
        for _ in range(repeats):
            # Only the last position's logits are needed, as in serving systems.
            output = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        first_token = output.logits[:, -1, :].argmax(dim=-1)
        _synchronize(device)
        window_s = time.perf_counter() - start
        reading = meter.end("prefill")
        wanted = repeats_for(window_s, repeats, meter.min_window_s, max_repeats)
        if wanted == repeats:
            break
        repeats = wanted
    flags = []
    per_pass = reading.joules / repeats
    if window_s < meter.min_window_s:
        flags.append("prefill-window-short")
        per_pass = joules.NONE
    return Prefill(output, first_token, window_s / repeats, per_pass, repeats, reading, flags)


@torch.inference_mode()
def decode_greedy(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    meter: Meter,
    max_prefill_repeats: int = 64,
    stopper: stopping.Stopper | None = None,
    strategy: str | None = None,
) -> Decoded:
    """Greedy decoding of one prompt until EOS, `max_new_tokens` output tokens, or the
    `stopper` of a babbling-suppression `strategy` (its stop reason) finds the answer
    complete."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if stopper is not None and not strategy:
        raise ValueError("a stopper needs the name of its strategy (the stop reason it gives)")
    model, device, eos = loaded.model, loaded.device, loaded.eos_token_ids

    prefill = measure_prefill(loaded, input_ids, meter, max_prefill_repeats)
    flags = list(prefill.flags)
    next_id = prefill.first_token
    token = int(next_id.item())
    cache = prefill.output.past_key_values
    token_ids = [token]
    times = [prefill.seconds]
    walls = [time.time()]  # wall-clock end of each token, for power timelines
    stop_reason = "eos" if token in eos else "max_tokens"
    detokenizer = IncrementalDetokenizer(loaded.tokenizer) if stopper else None
    text: list[str] = []
    kept: int | None = None

    def answer_complete(token: int) -> bool:
        nonlocal kept
        if stopper is None or detokenizer is None:
            return False
        text.append(detokenizer.push(token))
        kept = stopper.feed(text[-1])
        return kept is not None

    # No decode phase at all costs nothing (on the host too, where it is read).
    decode_energy = Joules(0.0, 0.0 if meter.host_source else None)
    beside = prefill.reading.conditions
    decode_s = 0.0
    if token not in eos and stopper is not None and answer_complete(token):
        stop_reason = strategy
    elif token not in eos and max_new_tokens > 1:
        _synchronize(device)
        meter.begin("decode")
        decode_start = time.perf_counter()
        walls[0] = time.time()
        while True:
            out = model(input_ids=next_id[:, None], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            next_id = out.logits[:, -1, :].argmax(dim=-1)
            token = int(next_id.item())  # .item() waits for the device
            token_ids.append(token)
            times.append(prefill.seconds + time.perf_counter() - decode_start)
            walls.append(time.time())
            if token in eos:
                stop_reason = "eos"
                break
            if stopper is not None and answer_complete(token):
                stop_reason = strategy
                break
            if len(token_ids) >= max_new_tokens:
                stop_reason = "max_tokens"
                break
        decode_s = time.perf_counter() - decode_start
        decode_reading = meter.end("decode")
        decode_energy = decode_reading.joules
        beside = beside.then(decode_reading.conditions)
        if decode_s < meter.min_window_s:
            flags.append("decode-window-short")
            decode_energy = joules.NONE
    if decode_s == 0.0:
        flags.append("no-decode")

    reading = prefill.reading
    # Each phase's tokens from its own power samples: decode's first tokens must not hold the
    # last sample of prefill (energy.phase_energies).
    (first,), tokens = meter.interval_energies(
        [[(reading.start, reading.end)], list(itertools.pairwise(walls))]
    )
    energies = [None if first is None else first / prefill.repeats, *tokens]
    if meter.per_token_flag:
        flags.append(meter.per_token_flag)
    elif first is not None and None in tokens:  # a timeline, but no sample of decode's own
        flags.append(energy.PER_TOKEN_PHASE_SHORT)
    return Decoded(
        prompt_tokens=int(input_ids.shape[1]),
        token_ids=token_ids,
        stop_reason=stop_reason,
        token_times_s=times,
        token_energies_j=energies[: len(token_ids)],
        prefill_s=prefill.seconds,
        decode_s=decode_s,
        prefill_energy=prefill.energy,
        decode_energy=decode_energy,
        prefill_repeats=prefill.repeats,
        flags=flags,
        kept_text=None if kept is None else "".join(text)[:kept],
        conditions=beside,
    )


def task_passes(window_s: float, min_window_s: float, max_repeats: int) -> int:
    """How many whole-task passes make a window of at least `min_window_s` (20% margin)."""
    return min(max_repeats, max(2, math.ceil(1.2 * min_window_s / max(window_s, 1e-6))))


def _replay_task(loaded: LoadedModel, input_ids: torch.Tensor, token_ids: list[int]) -> None:
    """The forward passes of one decoded task again: prefill, then each output token but the
    last fed back, with the same argmax and wait for the device as in decoding."""
    model = loaded.model
    # On the device before the window's work, as decoding's own next-token ids are.
    steps = torch.tensor(token_ids[:-1], device=loaded.device).view(-1, 1, 1)
    output = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
    int(output.logits[:, -1, :].argmax(dim=-1).item())
    cache = output.past_key_values
    for step in steps:
        output = model(input_ids=step, past_key_values=cache, use_cache=True)
        cache = output.past_key_values
        int(output.logits[:, -1, :].argmax(dim=-1).item())


@torch.inference_mode()
def decode_by_subtraction(
    loaded: LoadedModel, input_ids: torch.Tensor, decoded: Decoded, meter: Meter, max_repeats: int
) -> Decoded:
    """Decode energy of a task whose decode window is too short for the meter: the whole task
    (prefill and decode) passed r times in one window; decode = whole / r - prefill, for its
    energy and its time alike (so that both come from the same window). What still cannot be
    resolved stays null."""
    if "decode-window-short" not in decoded.flags or decoded.prefill_energy.accelerator is None:
        return decoded
    passes = task_passes(decoded.prefill_s + decoded.decode_s, meter.min_window_s, max_repeats)
    while True:
        _synchronize(loaded.device)
        meter.begin("task")
        start = time.perf_counter()
        for _ in range(passes):
            _replay_task(loaded, input_ids, decoded.token_ids)
        _synchronize(loaded.device)
        window_s = time.perf_counter() - start
        reading = meter.end("task")
        if window_s >= meter.min_window_s or passes >= max_repeats:
            break
        # A first pass slowed by the checks beside it makes the replays faster than planned.
        passes = max(passes + 1, task_passes(window_s / passes, meter.min_window_s, max_repeats))
    beside = decoded.conditions.then(reading.conditions)
    if window_s < meter.min_window_s:
        return dataclasses.replace(decoded, task_repeats=passes, conditions=beside)
    decode = reading.joules / passes - decoded.prefill_energy
    flags = [f for f in decoded.flags if f != "decode-window-short"]
    flags.append("decode-by-subtraction")
    if decode.accelerator is not None and decode.accelerator < 0:
        # The difference is lost in the counter's noise (the host's figure is its own).
        decode = dataclasses.replace(decode, accelerator=None)
        flags.append("decode-subtraction-negative")
    return dataclasses.replace(
        decoded,
        decode_s=max(window_s / passes - decoded.prefill_s, 0.0),
        decode_energy=decode,
        task_repeats=passes,
        flags=flags,
        conditions=beside,
    )


def completion_text(loaded: LoadedModel, token_ids: list[int]) -> str:
    """The output text, without the EOS token that ended it."""
    kept = [t for t in token_ids if t not in loaded.eos_token_ids]
    return loaded.tokenizer.decode(kept, skip_special_tokens=True)


@dataclass(frozen=True)
class Context:
    """What every record of one run carries beside its task: what was metered and the idle
    power of that device, measured in this job after warm-up."""

    energy_source: str
    metered_device: str
    energy_measured: bool
    energy_covers_cpu: bool
    host_energy_source: str | None
    idle_power_w: float | None
    idle_host_power_w: float | None

    @classmethod
    def of(cls, meter: Meter, idle: Reading | None) -> Context:
        idle_w, idle_host_w = energy.power_w(idle) if idle is not None else (None, None)
        return cls(
            energy_source=meter.source,
            metered_device=meter.device,
            energy_measured=meter.measured,
            energy_covers_cpu=meter.covers_cpu,
            host_energy_source=meter.host_source,
            idle_power_w=idle_w,
            idle_host_power_w=idle_host_w,
        )


@dataclass(frozen=True)
class Checks:
    """The costs of a strategy's own checks for one task (the oracle's test runs)."""

    seconds: float | None = 0.0
    energy_j: float | None = 0.0
    source: str | None = None
    # Checks whose CPU time the sandbox could not report, counted at their wall time.
    cpu_unmeasured: int = 0


def record(
    keys: dict[str, Any],
    task_id: str,
    decoded: Decoded,
    completion: str | None,
    context: Context,
    checks: Checks | None = None,
    task_s: float | None = None,
    remeasured: int = 0,
    control: Control | None = None,
    started_s: float | None = None,
) -> dict[str, Any]:
    """The generation record (records.GENERATION_SCHEMA) of one decoded task; `task_s` is its
    first pass end to end (prefill + decode when not given); `remeasured`, how many times it
    was measured again for contention; `control`, its same-tokens control, if it has one;
    `started_s`, when its kept measurement began (Unix seconds)."""
    checks = checks or Checks()
    return {
        **keys,
        "task_id": task_id,
        "prompt_tokens": decoded.prompt_tokens,
        "output_tokens": len(decoded.token_ids),
        "stop_reason": decoded.stop_reason,
        "completion": completion,
        "prefill_s": decoded.prefill_s,
        "decode_s": decoded.decode_s,
        "task_s": decoded.prefill_s + decoded.decode_s if task_s is None else task_s,
        "started_s": started_s,
        "prefill_energy_j": decoded.prefill_energy.accelerator,
        "decode_energy_j": decoded.decode_energy.accelerator,
        **dataclasses.asdict(context),
        "prefill_host_energy_j": decoded.prefill_energy.host,
        "decode_host_energy_j": decoded.decode_energy.host,
        "prefill_repeats": decoded.prefill_repeats,
        "task_repeats": decoded.task_repeats,
        "energy_flags": ",".join(
            [*decoded.flags, *([CHECK_CPU_FROM_WALL] if checks.cpu_unmeasured else [])]
        ),
        "check_s": checks.seconds,
        "check_energy_j": checks.energy_j,
        "check_energy_source": checks.source,
        **decoded.conditions.columns(),
        "remeasured": remeasured,
        **(NO_CONTROL if control is None else control.columns()),
    }


RAPL_SHARE_SOURCE = "zeus:rapl-cpu-share"
CHECK_CPU_FROM_WALL = "check-cpu-from-wall"


def check_costs(
    stats: stopping.CheckStats,
    watts_per_core: float | None,
    package: tuple[float | None, float] | None = None,
) -> Checks:
    """A strategy's checks (the oracle's test runs): their wall time and energy. Where RAPL
    read the CPU packages over the task (`package`: their energy, and this process's own CPU
    seconds then), the checks get the share of it that their CPU time, as the sandbox
    measured it, has of all CPU time spent; elsewhere their CPU time x the power of a busy
    core (an estimate; null without one)."""
    unmeasured = stats.cpu_unmeasured
    if package is not None and package[0] is not None:
        package_j, own_cpu_s = package
        busy = own_cpu_s + stats.cpu_seconds
        share = stats.cpu_seconds / busy if busy > 0 else 0.0
        return Checks(stats.seconds, package_j * share, RAPL_SHARE_SOURCE, unmeasured)
    if not watts_per_core:
        return Checks(stats.seconds, None, None, unmeasured)
    return Checks(
        stats.seconds, stats.cpu_seconds * watts_per_core, energy.ESTIMATE_SOURCE, unmeasured
    )


def package_energy(meter: Meter, reading: Reading) -> float | None:
    """The CPU packages' energy in a reading: the accelerator's figure when the model runs on
    them, else the host's (package and DRAM beside a GPU), where RAPL read it."""
    if meter.covers_cpu:
        return reading.joules.accelerator
    return reading.joules.host


def warm_up(
    loaded: LoadedModel, meter: Meter, task: dict[str, Any], settings: GenerationSettings
) -> None:
    """One short unrecorded generation, so lazy initialisation is not billed to a task."""
    input_ids = encode(loaded, task, settings.prompt_style, settings.prompt_budget)
    decode_greedy(loaded, input_ids, max_new_tokens=4, meter=meter)


@dataclass(frozen=True)
class Side:
    """One workload of a job: its tasks, its settings and the keys its records carry."""

    tasks: list[dict[str, Any]]
    settings: GenerationSettings
    keys: dict[str, Any]


def interleaved(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """The order in which a job decodes the tasks of several workloads, as (workload, task)
    indices: each workload's tasks in their order, spread evenly over the job (the i-th of n
    at (i + 0.5) / n of the way), so that a machine whose speed drifts over the job drifts
    under every workload alike. Tasks due at the same point take turns going first (A B B A
    for two workloads of one size), so that not one workload always runs the later.
    One workload: its tasks in order."""
    slots = [
        ((i + 0.5) / n, side if i % 2 == 0 else -side, side, i)
        for side, n in enumerate(sizes)
        for i in range(n)
    ]
    return [(side, i) for _, _, side, i in sorted(slots)]


def run(
    loaded: LoadedModel,
    tasks: Iterable[dict[str, Any]],
    meter: Meter,
    strategy: stopping.RunStrategy,
    settings: GenerationSettings,
    keys: dict[str, Any],
    log: Callable[[str], None] = print,
) -> RunResult:
    """Decode every task of one workload (run_interleaved, one side)."""
    side = Side(list(tasks), settings, keys)
    return run_interleaved(loaded, [side], meter, strategy, log)[0]


def run_interleaved(
    loaded: LoadedModel,
    sides: Sequence[Side],
    meter: Meter,
    strategy: stopping.RunStrategy,
    log: Callable[[str], None] = print,
) -> list[RunResult]:
    """Decode every task of every side, the sides' tasks interleaved (interleaved); return,
    per side, one record per task (with its `keys`) and one row per output token.

    Prompts are rendered by workloads.prompt_and_ids (shots, chat template, middle cut to the
    prompt budget); `strategy` gives each task's stopper. The oracle's checks run in other
    processes: their time is `check_s`, their energy `check_energy_j` (check_costs). With
    `ignore_eos`, the end-of-sequence token is decoded past like any other.

    After the warm-up and before the first task, the metered device is measured idle (not the
    estimate's: it models no device); every record carries that power, and a GPU meter
    subtracts it from the idle moments its windows hold. A task's checks are waited for
    before the next task's windows open. A decode window too short for the meter is measured
    again with the whole task repeated (decode_by_subtraction).

    Each task's windows read what else the machine did (conditions): a task whose windows
    other processes contended is measured again, up to `settings.bounds.max_remeasures`
    times, and flagged `contended` where it stays so; a measured task whose mean power lies
    outside its device's idle power and power limit is flagged (power_flags).
    """
    results = [RunResult() for _ in sides]
    order = interleaved([len(side.tasks) for side in sides])
    if not order:
        return results
    first = sides[order[0][0]]
    if first.settings.ignore_eos:
        loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())
    warm_up(loaded, meter, first.tasks[0], first.settings)
    idle = None
    if first.settings.idle_seconds > 0 and meter.measured:  # the estimate has no device to rest
        idle = energy.measure_idle(meter, first.settings.idle_seconds)
        log(f"idle {meter.device}: {energy.power_w(idle)[0]} W over {idle.seconds:.1f} s")
    context = Context.of(meter, idle)
    # Cores of the job's the model leaves to other processes: taking them is not contention.
    free_cores = conditions.job_cores() - torch.get_num_threads()
    for index, (side_index, task_index) in enumerate(order, start=1):
        side, task = sides[side_index], sides[side_index].tasks[task_index]
        measured, remeasured = measure_until_calm(
            loaded, task, meter, strategy, side.settings, free_cores, log
        )
        decoded = measured.decoded
        if meter.measured:
            decoded.flags.extend(power_flags(decoded, context, side.settings.bounds))
        completion = decoded.kept_text
        if completion is None:
            completion = completion_text(loaded, decoded.token_ids)
        result = results[side_index]
        result.records.append(
            record(
                side.keys,
                task["task_id"],
                decoded,
                completion,
                context,
                measured.checks,
                measured.task_s,
                remeasured,
                measured.control,
                measured.started_s,
            )
        )
        result.tokens.extend(
            {"task_id": task["task_id"], "position": i, "t_s": t, "energy_j": e}
            for i, (t, e) in enumerate(
                zip(decoded.token_times_s, decoded.token_energies_j, strict=True)
            )
        )
        rate = len(decoded.token_ids) / max(decoded.prefill_s + decoded.decode_s, 1e-9)
        where = f" ({side.keys['workload']})" if len(sides) > 1 else ""
        log(
            f"[{index}/{len(order)}] {task['task_id']}{where}: {decoded.prompt_tokens} prompt "
            f"tokens, {len(decoded.token_ids)} output tokens ({decoded.stop_reason}), "
            f"{rate:.1f} tok/s"
            + (f", {describe(decoded.conditions)}" if conditions.CONTENDED in decoded.flags else "")
        )
    return results


def measure_until_calm(
    loaded: LoadedModel,
    task: dict[str, Any],
    meter: Meter,
    strategy: stopping.RunStrategy,
    settings: GenerationSettings,
    free_cores: float,
    log: Callable[[str], None],
) -> tuple[MeasuredTask, int]:
    """Measure one task, again while other processes contended its windows (up to the
    bounds' cap); one still contended is flagged. Returns it and how often it was redone."""
    prompt, ids = workloads.prompt_and_ids(
        loaded.tokenizer, task, settings.prompt_style, settings.prompt_budget
    )
    input_ids = prompt_tensor(loaded, ids, task["task_id"])
    remeasured = 0
    while True:
        measured = measure_task(loaded, task, prompt, input_ids, meter, strategy, settings)
        beside = measured.decoded.conditions
        contended = settings.bounds.contended(beside, free_cores)
        if not contended or remeasured >= settings.bounds.max_remeasures:
            break
        remeasured += 1
        log(f"{task['task_id']}: contended ({describe(beside)}), measured again")
    if contended:
        measured.decoded.flags.append(conditions.CONTENDED)
    return measured, remeasured


@dataclass(frozen=True)
class Control:
    """A strategy's kept tokens decoded again without it, right after it in the same job: the
    decode time and energy its checks are weighed against (same_tokens_control). Its energy
    is null where the tokens came out different."""

    decode_s: float
    decode_energy: Joules
    same_tokens: bool
    conditions: Conditions

    def columns(self) -> dict[str, Any]:
        """The record's control columns (records.GENERATION_SCHEMA)."""
        return {
            "control_decode_s": self.decode_s,
            "control_decode_energy_j": self.decode_energy.accelerator,
            "control_same_tokens": self.same_tokens,
        }


NO_CONTROL = dict.fromkeys(("control_decode_s", "control_decode_energy_j", "control_same_tokens"))


@torch.inference_mode()
def same_tokens_control(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    decoded: Decoded,
    meter: Meter,
    settings: GenerationSettings,
) -> Control:
    """The tokens a strategy kept, decoded again by the same greedy loop without its stopper
    and stopped at the same length, in windows of their own opened right after the
    strategy's: what the two differ in is the strategy's work beside decoding, not the
    machine's speed minutes apart (docs/design.md, "Measurement conditions")."""
    again = decode_greedy(
        loaded, input_ids, len(decoded.token_ids), meter, settings.max_prefill_repeats
    )
    again = decode_by_subtraction(loaded, input_ids, again, meter, settings.max_task_repeats)
    same = again.token_ids == decoded.token_ids
    return Control(
        decode_s=again.decode_s,
        decode_energy=again.decode_energy if same else joules.NONE,
        same_tokens=same,
        conditions=again.conditions,
    )


@dataclass(frozen=True)
class MeasuredTask:
    """One task decoded and metered: what it produced, its checks' costs, its first pass end
    to end (the stopper's last check included), its same-tokens control, if it has one, and
    when it began (Unix seconds: where it falls among the job's other tasks)."""

    decoded: Decoded
    checks: Checks | None
    task_s: float
    control: Control | None = None
    started_s: float | None = None


def measure_task(
    loaded: LoadedModel,
    task: dict[str, Any],
    prompt: str,
    input_ids: torch.Tensor,
    meter: Meter,
    strategy: stopping.RunStrategy,
    settings: GenerationSettings,
) -> MeasuredTask:
    """Decode and meter one task under `strategy` (a stopper of its own), its checks waited
    for, and its decode found by subtraction where its window is too short."""
    started_s = time.time()
    stopper = strategy.for_task(task, prompt)
    # Where RAPL reads the packages, one window over the task and its checks shares it out.
    rapl_checks = (
        stopper is not None
        and strategy.runs_code
        and meter.measured
        and bool(meter.covers_cpu or meter.host_source)
    )
    if rapl_checks:
        meter.begin("checks")
        own_cpu_start = time.process_time()
    decoded = decode_greedy(
        loaded,
        input_ids,
        settings.max_new_tokens,
        meter,
        settings.max_prefill_repeats,
        stopper,
        strategy.name,
    )
    checks = None
    task_s = decoded.prefill_s + decoded.decode_s  # before replays can replace decode_s
    if stopper is not None:
        # A last check may still run: wait, so it spends nothing in the next windows.
        waited = time.perf_counter()
        stats = stopper.finish(wait=True)
        task_s += time.perf_counter() - waited
        package = None
        if rapl_checks:
            reading = meter.end("checks")
            package = (package_energy(meter, reading), time.process_time() - own_cpu_start)
        if stats is not None:
            checks = check_costs(stats, settings.check_watts_per_core, package)
    decoded = decode_by_subtraction(loaded, input_ids, decoded, meter, settings.max_task_repeats)
    control = None
    if stopper is not None and strategy.name in settings.same_tokens_control:
        control = same_tokens_control(loaded, input_ids, decoded, meter, settings)
        # The task's conditions cover its control's windows too.
        decoded = dataclasses.replace(
            decoded, conditions=decoded.conditions.then(control.conditions)
        )
    return MeasuredTask(decoded, checks, task_s, control, started_s)


def power_flags(decoded: Decoded, context: Context, bounds: conditions.Bounds) -> list[str]:
    """Flags for a measured task whose prefill or decode mean power lies outside what its
    device can draw: below its idle power, above its power limit (conditions.Bounds)."""
    limit = decoded.conditions.power_limit_w
    flags: list[str] = []
    for energy_j, seconds in (
        (decoded.prefill_energy.accelerator, decoded.prefill_s),
        (decoded.decode_energy.accelerator, decoded.decode_s),
    ):
        mean_w = None if energy_j is None or seconds <= 0 else energy_j / seconds
        flags += [
            f for f in bounds.power_flags(mean_w, context.idle_power_w, limit) if f not in flags
        ]
    return flags


def describe(beside: Conditions) -> str:
    """Other processes' share of the machine in a window, for the job's log."""
    parts = (
        [] if beside.other_cores is None else [f"others kept {beside.other_cores:.2f} cores busy"]
    )
    if beside.gpu_other_processes:
        parts.append(f"{beside.gpu_other_processes} other process(es) on the GPU")
    return ", ".join(parts) or "conditions unread"
