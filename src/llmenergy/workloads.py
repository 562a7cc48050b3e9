"""Workloads: a dataset, a task selection and a prompt form, as one table of tasks.

A workload is a config entry (docs/configuration.md): its dataset, a prompt `template`, a number of
`shots`, an `instruction`, `max_new_tokens` and an optional `prompt_budget`. `build` turns
the dataset's rows into the task table; `encode_prompt` turns one task into the token ids a
model reads, in the model's prompt style:

- `completion`: raw text the model continues: the shots, then the task's text;
- `chat`: the tokenizer's chat template over messages: each shot as a user turn and an
  assistant answer, then the task as the last user turn.

A prompt longer than its budget is cut in the middle, on tokens, as LongBench does: the first
half and the last half of the budget are kept. The budget is the smaller of the workload's
and the model's `prompt_budget` (`prompt_budget`).

The texts below (shot examples, instructions) are our own, fixed, and versioned by
`PROMPTS_VERSION`, which every task row records. The shots are not evaluation tasks.
"""

from __future__ import annotations

import string
from typing import Any

import polars as pl

from llmenergy import datasets

PROMPTS_VERSION = "1"
PROMPT_STYLES = ("completion", "chat")

# LongBench's own prompts for its code tasks (its dataset2prompt).
LONGBENCH_PROMPTS = {
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}
# The stand-in is next-line completion over whole files, as lcc is.
LONGBENCH_PROMPTS[datasets.STANDIN] = LONGBENCH_PROMPTS["lcc"]

HUMANEVAL_CHAT = (
    "Complete the following Python function.{instruction} Answer with the complete function "
    "in one ```python code block.\n\n```python\n{prompt}```"
)

# Built-in templates: per prompt style, a format string over the row's fields and
# {instruction}. "longbench" picks LongBench's prompt by the row's `dataset` field.
TEMPLATES: dict[str, dict[str, str]] = {
    "humaneval": {"completion": "{prompt}{instruction}", "chat": HUMANEVAL_CHAT},
    **{task: {"completion": text, "chat": text} for task, text in LONGBENCH_PROMPTS.items()},
}

# Instructions by name, per prompt style. In completion style the text follows the task's
# prompt, where the function body starts, so it is Python (a comment) and stays in the program
# that is tested.
INSTRUCTIONS: dict[str, dict[str, str]] = {
    "cot": {
        "completion": (
            "    # Let us think step by step. First explain, in comments, how to solve the task;\n"
            "    # then write the code of the function body.\n"
        ),
        "chat": (
            " Think step by step: first explain in plain sentences how to solve the task, then"
            " give the code."
        ),
    },
}

# Shot examples: HumanEval-style tasks we wrote, with reference solutions (their doctests
# pass). None of them is, or paraphrases, a HumanEval task.
SHOTS: tuple[dict[str, str], ...] = (
    {
        "prompt": (
            "def celsius_to_fahrenheit(degrees: float) -> float:\n"
            '    """Convert a temperature from degrees Celsius to degrees Fahrenheit.\n'
            "    >>> celsius_to_fahrenheit(100.0)\n"
            "    212.0\n"
            "    >>> celsius_to_fahrenheit(-40.0)\n"
            "    -40.0\n"
            '    """\n'
        ),
        "solution": "    return degrees * 9 / 5 + 32\n",
    },
    {
        "prompt": (
            "from typing import List, Tuple\n"
            "\n"
            "\n"
            "def run_lengths(text: str) -> List[Tuple[str, int]]:\n"
            '    """Split text into runs of one repeated character; return each run as the\n'
            "    character and how many times it repeats, in order.\n"
            '    >>> run_lengths("aaabccdd")\n'
            "    [('a', 3), ('b', 1), ('c', 2), ('d', 2)]\n"
            '    >>> run_lengths("")\n'
            "    []\n"
            '    """\n'
        ),
        "solution": (
            "    runs = []\n"
            "    for char in text:\n"
            "        if runs and runs[-1][0] == char:\n"
            "            runs[-1] = (char, runs[-1][1] + 1)\n"
            "        else:\n"
            "            runs.append((char, 1))\n"
            "    return runs\n"
        ),
    },
)

SHOT_TYPE = pl.Struct({"user": pl.String(), "assistant": pl.String()})
WORKLOAD_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "benchmark": pl.String(),  # the dataset's format: humaneval, longbench or longbench-standin
    "scorer": pl.String(),  # humaneval (run the tests) or code_sim (LongBench)
    "prompt": pl.String(),  # the task's own text (HumanEval: the function to complete)
    "prompt_completion": pl.String(),  # the task as completion-style text, instruction included
    "prompt_chat": pl.String(),  # the task as the last user message, instruction included
    "shots_completion": pl.String(),  # text before the task in completion style
    "shots_chat": pl.List(SHOT_TYPE),  # turns before the task in chat style
    "entry_point": pl.String(),
    "test": pl.String(),
    "reference": pl.String(),
    "answers": pl.List(pl.String()),
    "prompt_version": pl.String(),
}


class WorkloadError(ValueError):
    """A workload's config does not fit its dataset, or a prompt cannot fit its budget."""


def select_tasks(rows: list[dict[str, Any]], name: str, spec: dict[str, Any]) -> list[dict]:
    """The tasks a workload runs: listed ids in the given order, else the first `limit` rows."""
    if spec.get("task_ids"):
        by_id = {row["task_id"]: row for row in rows}
        unknown = [task for task in spec["task_ids"] if task not in by_id]
        if unknown:
            raise WorkloadError(f"workloads.{name}.task_ids: unknown task(s) {unknown}")
        return [by_id[task] for task in spec["task_ids"]]
    limit = spec.get("limit")
    if limit is not None and limit > len(rows):
        raise WorkloadError(f"workloads.{name}.limit is {limit}, but the dataset has {len(rows)}")
    return rows[:limit] if limit is not None else rows


def template_for(name: str, spec: dict[str, Any], fmt: str, row: dict[str, Any]) -> dict[str, str]:
    """The template (per prompt style) a workload applies to one row."""
    chosen = spec.get("template") or datasets.get_format(fmt).template
    if isinstance(chosen, dict):
        return chosen
    if chosen == "longbench":
        task = row.get("dataset")
        if task not in LONGBENCH_PROMPTS:
            raise WorkloadError(f"workloads.{name}: no LongBench prompt for task {task!r}")
        return TEMPLATES[task]
    if chosen in TEMPLATES:
        return TEMPLATES[chosen]
    if "{" not in chosen:
        raise WorkloadError(
            f"workloads.{name}.template: {chosen!r} is neither a built-in template "
            f"({sorted([*TEMPLATES, 'longbench'])}) nor a format string with {{fields}}"
        )
    return {"completion": chosen, "chat": chosen}


def instruction_for(name: str, spec: dict[str, Any]) -> dict[str, str]:
    chosen = spec.get("instruction")
    if chosen is None:
        return {"completion": "", "chat": ""}
    if isinstance(chosen, dict):
        return {"completion": chosen.get("completion", ""), "chat": chosen.get("chat", "")}
    if chosen not in INSTRUCTIONS:
        raise WorkloadError(
            f"workloads.{name}.instruction: unknown instruction {chosen!r} "
            f"(built-in: {sorted(INSTRUCTIONS)}; or give {{completion: ..., chat: ...}})"
        )
    return INSTRUCTIONS[chosen]


def fill(name: str, template: str, row: dict[str, Any], instruction: str) -> str:
    """`template` with the row's fields and the instruction filled in."""
    fields = {**row, "instruction": instruction}
    wanted = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    missing = sorted({field for field in wanted if field not in fields})
    if missing:
        raise WorkloadError(f"workloads.{name}.template uses {missing}, which rows do not have")
    return template.format_map(fields)


def shot_turns(count: int) -> list[dict[str, str]]:
    """The first `count` shots as chat turns."""
    if count > len(SHOTS):
        raise WorkloadError(f"{count} shots asked, {len(SHOTS)} exist")
    return [
        {
            "user": fill("shots", HUMANEVAL_CHAT, shot, ""),
            "assistant": f"```python\n{shot['prompt']}{shot['solution']}```",
        }
        for shot in SHOTS[:count]
    ]


def shots_text(count: int) -> str:
    """The first `count` shots as completion-style text (each solved, then a blank line)."""
    if count > len(SHOTS):
        raise WorkloadError(f"{count} shots asked, {len(SHOTS)} exist")
    return "".join(f"{shot['prompt']}{shot['solution']}\n\n" for shot in SHOTS[:count])


def task_row(name: str, spec: dict[str, Any], fmt: str, row: dict[str, Any]) -> dict[str, Any]:
    """One row of the task table."""
    template = template_for(name, spec, fmt, row)
    instruction = instruction_for(name, spec)
    shots = int(spec.get("shots", 0))
    if datasets.get_format(fmt).has_tests:
        own = {
            "scorer": "humaneval",
            "prompt": row["prompt"],
            "entry_point": row["entry_point"],
            "test": row["test"],
            "reference": row["canonical_solution"],
            "answers": [],
        }
    else:
        own = {
            "scorer": "code_sim",
            "prompt": fill(name, template["completion"], row, ""),
            "entry_point": None,
            "test": None,
            "reference": row["answers"][0],
            "answers": list(row["answers"]),
        }
    return {
        "task_id": row["task_id"],
        "benchmark": fmt,
        **own,
        "prompt_completion": fill(name, template["completion"], row, instruction["completion"]),
        "prompt_chat": fill(name, template["chat"], row, instruction["chat"]),
        "shots_completion": shots_text(shots),
        "shots_chat": shot_turns(shots),
        "prompt_version": PROMPTS_VERSION,
    }


def build(
    rows: list[dict[str, Any]], name: str, spec: dict[str, Any], fmt: str = "humaneval"
) -> pl.DataFrame:
    """The task table of workload `name` over rows of a dataset of format `fmt`."""
    chosen = select_tasks(rows, name, spec)
    if not chosen:
        raise WorkloadError(f"workloads.{name} selects no task")
    if spec.get("shots", 0) and not datasets.get_format(fmt).takes_shots:
        raise WorkloadError(f"workloads.{name}.shots: shots exist for HumanEval tasks only")
    table = [task_row(name, spec, fmt, row) for row in chosen]
    return pl.DataFrame(table, schema=WORKLOAD_SCHEMA, orient="row")


# Prompts ------------------------------------------------------------------------------------


def prompt_budget(workload: dict[str, Any], model: dict[str, Any]) -> int | None:
    """The most prompt tokens a model reads on a workload: the smaller budget of the two."""
    budgets = [b for b in (workload.get("prompt_budget"), model.get("prompt_budget")) if b]
    return min(budgets) if budgets else None


def _token_ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def render(tokenizer: Any, task: dict[str, Any], prompt_style: str, text: str) -> tuple[str, bool]:
    """The text a model reads for `task` with `text` as the task's own part, and whether the
    tokenizer should add its special tokens (the chat template holds them already)."""
    if prompt_style == "completion":
        return (task.get("shots_completion") or "") + text, True
    if prompt_style == "chat":
        messages = []
        for shot in task.get("shots_chat") or []:
            messages.append({"role": "user", "content": shot["user"]})
            messages.append({"role": "assistant", "content": shot["assistant"]})
        messages.append({"role": "user", "content": text})
        if not getattr(tokenizer, "chat_template", None):
            raise WorkloadError("prompt_style chat needs a tokenizer with a chat template")
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return rendered, False
    raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")


def truncate_middle(tokenizer: Any, text: str, keep: int) -> str:
    """`text` cut to about `keep` tokens in its middle: its first and last keep/2 tokens."""
    ids = _token_ids(tokenizer, text, False)
    if len(ids) <= keep:
        return text
    head = keep // 2
    tail = keep - head
    return tokenizer.decode(ids[:head], skip_special_tokens=True) + tokenizer.decode(
        ids[len(ids) - tail :], skip_special_tokens=True
    )


def task_text(task: dict[str, Any], prompt_style: str) -> str:
    if prompt_style == "completion":
        return task.get("prompt_completion") or task["prompt"]
    return task.get("prompt_chat") or task["prompt"]


def prompt_and_ids(
    tokenizer: Any, task: dict[str, Any], prompt_style: str, budget: int | None = None
) -> tuple[str, list[int]]:
    """The prompt text and its token ids, at most `budget` tokens (the task's text is cut in
    the middle to fit; shots and templates are kept whole)."""
    text = task_text(task, prompt_style)
    rendered, special = render(tokenizer, task, prompt_style, text)
    ids = _token_ids(tokenizer, rendered, special)
    if budget is None or len(ids) <= budget:
        return rendered, ids
    own = len(_token_ids(tokenizer, text, False))
    keep = own - (len(ids) - budget)
    # Decoding and encoding again can merge tokens at the cut differently; shrink until it fits.
    for _ in range(8):
        if keep < 2:
            raise WorkloadError(
                f"task {task.get('task_id')}: a prompt budget of {budget} tokens leaves no room "
                f"for the task's text ({len(ids) - own} tokens go to the template and shots)"
            )
        rendered, special = render(
            tokenizer, task, prompt_style, truncate_middle(tokenizer, text, keep)
        )
        ids = _token_ids(tokenizer, rendered, special)
        if len(ids) <= budget:
            return rendered, ids
        keep -= len(ids) - budget
    raise WorkloadError(f"task {task.get('task_id')}: cannot cut the prompt to {budget} tokens")


def encode_prompt(
    tokenizer: Any, task: dict[str, Any], prompt_style: str, prompt_budget: int | None = None
) -> list[int]:
    """The token ids a model reads for `task` (a row of the task table) in `prompt_style`,
    cut in the middle to at most `prompt_budget` tokens."""
    return prompt_and_ids(tokenizer, task, prompt_style, prompt_budget)[1]
