"""The instrumented decoding loop on a real (tiny, random-weight) model."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from llmenergy import energy, generation, models, stopping, workloads
from llmenergy.generation_settings import GenerationSettings
from llmenergy.joules import Joules

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'


def reference_ids(loaded, input_ids: torch.Tensor, max_new_tokens: int) -> list[int]:
    """Greedy ids from transformers' own generate, the reference for our loop."""
    output = loaded.model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=sorted(loaded.eos_token_ids),
        pad_token_id=sorted(loaded.eos_token_ids)[0],
    )
    return output[0, input_ids.shape[1] :].tolist()


def test_greedy_ids_equal_generate(tiny_model):
    meter = energy.EstimateMeter(10.0)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    decoded = generation.decode_greedy(tiny_model, input_ids, 24, meter)
    assert decoded.token_ids == reference_ids(tiny_model, input_ids, 24)
    assert decoded.prompt_tokens == input_ids.shape[1]


def test_phases_timed_and_metered_apart(tiny_model):
    # Windows of any length resolve: 11 tiny-model tokens can take under the default 10 ms.
    meter = energy.EstimateMeter(10.0, min_window_s=1e-6)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    decoded = generation.decode_greedy(tiny_model, input_ids, 12, meter)
    if decoded.stop_reason == "eos":
        pytest.skip("the random model happened to stop at once")
    assert len(decoded.token_times_s) == len(decoded.token_ids) == 12
    assert decoded.stop_reason == "max_tokens"
    times = decoded.token_times_s
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    assert times[0] == pytest.approx(decoded.prefill_s)
    assert decoded.prefill_s > 0 and decoded.decode_s > 0
    prefill, decode = decoded.prefill_energy.accelerator, decoded.decode_energy.accelerator
    assert prefill is not None and prefill >= 0
    assert decode is not None and decode > 0
    assert decoded.prefill_energy.host is None and decoded.decode_energy.host is None  # not read


def test_stops_at_eos(tiny_model):
    """Declare the 5th greedy token an EOS token: decoding must stop right there."""
    meter = energy.EstimateMeter(10.0)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    free = generation.decode_greedy(tiny_model, input_ids, 12, meter)
    stop_token = free.token_ids[4]
    first = free.token_ids.index(stop_token)
    with_eos = dataclasses.replace(tiny_model, eos_token_ids=frozenset({stop_token}))
    decoded = generation.decode_greedy(with_eos, input_ids, 12, meter)
    assert decoded.stop_reason == "eos"
    assert decoded.token_ids == free.token_ids[: first + 1]
    assert stop_token not in generation.completion_text(with_eos, decoded.token_ids).split()


def test_single_token_cap_has_no_decode_phase(tiny_model):
    meter = energy.EstimateMeter(10.0)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    decoded = generation.decode_greedy(tiny_model, input_ids, 1, meter)
    assert len(decoded.token_ids) == 1
    assert decoded.decode_s == 0.0
    # No decode phase happened: it cost nothing (and the estimate reads no host).
    assert decoded.decode_energy == Joules(0.0, None)
    assert decoded.flags == ["no-decode"]


def test_bad_cap_and_style_rejected(tiny_model):
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generation.decode_greedy(tiny_model, input_ids, 0, energy.EstimateMeter(1.0))
    with pytest.raises(ValueError, match="prompt_style"):
        generation.encode(tiny_model, PROMPT, "poem")


def test_chat_prompt_uses_template(tiny_model):
    text, ids = workloads.prompt_and_ids(tiny_model.tokenizer, {"prompt": PROMPT}, "chat")
    assert PROMPT in text and text != PROMPT
    assert generation.encode(tiny_model, PROMPT, "chat")[0].tolist() == ids


def test_run_writes_one_record_per_task(tiny_model):
    tasks = [{"task_id": f"T/{i}", "prompt": PROMPT + "    " * i} for i in range(3)]
    keys = {"model": "tiny", "workload": "w", "strategy": "none", "rep": 1}
    lines: list[str] = []
    result = generation.run(
        tiny_model,
        tasks,
        energy.EstimateMeter(10.0),
        stopping.for_run(stopping.BASELINE, "completion"),
        GenerationSettings("completion", max_new_tokens=6, idle_seconds=0.05),
        keys,
        log=lines.append,
    )
    assert [r["task_id"] for r in result.records] == ["T/0", "T/1", "T/2"]
    # The estimate models a busy core: a sleeping process's CPU time is no idle power.
    assert {r["idle_power_w"] for r in result.records} == {None}
    assert len(lines) == 3 and lines[0].startswith("[1/3] T/0")
    for record in result.records:
        tokens = [t for t in result.tokens if t["task_id"] == record["task_id"]]
        assert len(tokens) == record["output_tokens"]
        assert record["energy_source"] == energy.ESTIMATE_SOURCE
    # A stopper's cut is recorded as its strategy's stop reason: one without a name is refused.
    stopper = stopping.for_run("syntax", "completion").for_task(tasks[0])
    input_ids = generation.encode(tiny_model, tasks[0], "completion")
    with pytest.raises(ValueError, match="strategy"):
        generation.decode_greedy(tiny_model, input_ids, 2, energy.EstimateMeter(1.0), 4, stopper)


def test_ignore_eos_decodes_exactly_max_new_tokens(tiny_model):
    """With the 3rd greedy token declared EOS, a run stops there; with ignore_eos it decodes
    on to max_new_tokens, through the same tokens."""
    meter = energy.EstimateMeter(10.0)
    free = generation.decode_greedy(
        tiny_model, generation.encode(tiny_model, PROMPT, "completion"), 10, meter
    )
    with_eos = dataclasses.replace(tiny_model, eos_token_ids=frozenset({free.token_ids[2]}))
    keys = {"model": "tiny", "workload": "w", "strategy": "none", "rep": 1}
    task = [{"task_id": "T/0", "prompt": PROMPT}]
    results = {
        ignore: generation.run(
            with_eos,
            task,
            meter,
            stopping.for_run(stopping.BASELINE, "completion"),
            GenerationSettings("completion", max_new_tokens=10, ignore_eos=ignore),
            keys,
            log=lambda _: None,
        ).records[0]
        for ignore in (False, True)
    }
    stopped = free.token_ids.index(free.token_ids[2]) + 1
    assert (results[False]["stop_reason"], results[False]["output_tokens"]) == ("eos", stopped)
    assert (results[True]["stop_reason"], results[True]["output_tokens"]) == ("max_tokens", 10)


def test_prompt_ids_beyond_a_random_vocabulary_are_folded_in(tiny_model):
    """A random model reading a larger tokenizer's ids gets them modulo its vocabulary (same
    length); any other model with such ids is an error naming the task."""
    vocabulary = models.vocabulary_size(tiny_model.model)
    ids = [1, vocabulary - 1, vocabulary, vocabulary + 5, 3 * vocabulary + 2]
    folded = generation.prompt_tensor(tiny_model, ids, "T/0")[0].tolist()
    assert folded == [1, vocabulary - 1, 0, 5, 2]
    trained = dataclasses.replace(tiny_model, provenance={"kind": "hub"})
    assert generation.prompt_tensor(trained, ids[:2], "T/0")[0].tolist() == ids[:2]
    with pytest.raises(models.ModelError, match=r"task T/7: prompt token id .* vocabulary"):
        generation.prompt_tensor(trained, ids, "T/7")


def test_checks_billed_by_wall_time_carry_their_count() -> None:
    """A check whose CPU time the sandbox could not report was billed at its wall time (by
    the stopper); its costs carry that count, from which the record's flag
    `check-cpu-from-wall` comes."""
    from llmenergy import stopping

    stats = stopping.CheckStats(checks=2, seconds=1.5, cpu_seconds=1.2, cpu_unmeasured=1)
    checks = generation.check_costs(stats, 10.0)
    assert (checks.energy_j, checks.cpu_unmeasured) == (pytest.approx(12.0), 1)
    measured = generation.check_costs(stopping.CheckStats(1, 0.5, 0.4), 10.0)
    assert measured.cpu_unmeasured == 0
