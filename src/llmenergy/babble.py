"""Babble metrics of whole outputs: where each answer is complete, by the syntax rule and by
the task's tests, in tokens; the tokens written after that (babble) and their share.

The stopping strategies that cut babble while decoding are the `stopping` package; these
metrics use the same rules on finished outputs. See docs/design.md, "Babbling".
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmenergy.stopping import FENCE, Check, code_header
from llmenergy.stopping.python_code import prefix_parses
from llmenergy.stopping.stopwords import FirstLineStopper
from llmenergy.stopping.syntax import SyntaxStopper


def candidate_cuts(output: str, task: dict[str, Any], prompt_style: str) -> list[int]:
    """Line ends of `output` where the code so far parses, in order (the oracle's points)."""
    chat = prompt_style == "chat"
    header = code_header(task, prompt_style)
    cuts, seen = [], set()
    for index, char in enumerate(output):
        if char != "\n":
            continue
        cut = len(output[:index].rstrip())
        if cut in seen:
            continue
        seen.add(cut)
        if prefix_parses(output, cut, header, chat):
            cuts.append(cut)
    if output.rstrip() and len(output.rstrip()) not in seen:
        cuts.append(len(output.rstrip()))  # the whole output is a candidate too
    return cuts


def answer_end_by_syntax(
    output: str, entry_point: str, header: str, chat: bool, ended: bool = False
) -> int | None:
    """Where the answer is complete by the syntax rule (None if it never is): the output is
    fed whole, then once more empty, as candidates that fail to parse are passed over. An
    output the model `ended` (EOS) that is a whole answer as it stands ends at its end."""
    stopper = SyntaxStopper(entry_point=entry_point, header=header, chat=chat)
    cut = stopper.feed(output)
    while cut is None and stopper.scanned < len(stopper.text):
        before = stopper.scanned
        cut = stopper.feed("")
        if stopper.scanned == before:
            break
    if cut is None and ended and stopper.complete_at_end():
        return len(output)
    return cut


def token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def answer_end(
    output: str, task: dict[str, Any], prompt_style: str, ended: bool = False
) -> int | None:
    """Where the answer is complete by the syntax rule (the first line, for LongBench); an
    output the model `ended` (EOS) may be complete only at its very end."""
    entry_point = task.get("entry_point") or ""
    if not entry_point:
        first_line = FirstLineStopper()
        cut = first_line.feed(output)
        # The model's EOS ends the last line as a newline would.
        return first_line.feed("\n") if cut is None and ended else cut
    chat = prompt_style == "chat"
    header = code_header(task, prompt_style)
    return answer_end_by_syntax(output, entry_point, header, chat, ended)


def whole_answer(output: str, cut: int, chat: bool) -> bool:
    """Nothing the answer did not need follows `cut`: only whitespace, or the closing fence
    of a chat answer's code block. The whole output is then the answer, babble 0."""
    rest = output[cut:].strip()
    return not rest or (chat and rest == FENCE)


def first_passing_cut(
    output: str,
    task: dict[str, Any],
    prompt_style: str,
    check: Check,
) -> int | None:
    """The earliest line end at which the output passes the task's tests (None: never)."""
    for cut in candidate_cuts(output, task, prompt_style):
        if check(output[:cut])[0]:
            return cut
    return None


def metrics(
    records: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    prompt_style: str,
    tokenizer: Any,
    check_for: Callable[[dict[str, Any]], Check] | None,
    workers: int = 2,
) -> list[dict[str, Any]]:
    """Babble metrics of each output: where its answer is complete, by the syntax rule and by
    the tests, in tokens; the tokens written after that; and their share of the output."""

    def one(record: dict[str, Any]) -> dict[str, Any]:
        task = tasks[record["task_id"]]
        output = record["completion"]
        # The EOS token is the model saying it is done, not babble.
        ended = record["stop_reason"] == "eos"
        written = record["output_tokens"] - (1 if ended else 0)
        row: dict[str, Any] = {
            k: record[k] for k in ("model", "workload", "strategy", "rep", "task_id")
        }
        for rule, cut in (
            ("syntax", answer_end(output, task, prompt_style, ended)),
            (
                "tests",
                first_passing_cut(output, task, prompt_style, check_for(task))
                if check_for is not None and task.get("test")
                else None,
            ),
        ):
            if cut is None:
                answer = None
            elif whole_answer(output, cut, prompt_style == "chat"):
                answer = written  # not a re-tokenization, which may differ by a token
            else:
                answer = min(written, token_count(tokenizer, output[:cut]))
            row[f"answer_tokens_{rule}"] = answer
            row[f"babble_tokens_{rule}"] = None if answer is None else written - answer
            row[f"babble_ratio_{rule}"] = (
                None if answer is None or written == 0 else (written - answer) / written
            )
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, records))
