"""The text of each new output token as it is decoded, for stoppers that read text."""

from __future__ import annotations

from typing import Any


class IncrementalDetokenizer:
    """Text of each new token, decoding a short window instead of the whole output.

    Multi-byte characters can span tokens: text that ends in an incomplete character (the
    replacement character) is held back until the next token completes it.
    """

    def __init__(self, tokenizer: Any, context: int = 6) -> None:
        self.tokenizer = tokenizer
        self.context = context
        self.ids: list[int] = []
        self.prefix = 0  # start of the window decoded for context
        self.emitted = 0  # ids[:emitted] are already in the text

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tokenizer.decode(
            self.ids[self.prefix : self.emitted], skip_special_tokens=True
        )
        after = self.tokenizer.decode(self.ids[self.prefix :], skip_special_tokens=True)
        if after.endswith("\ufffd") or len(after) <= len(before):
            return ""
        self.emitted = len(self.ids)
        self.prefix = max(0, self.emitted - self.context)
        return after[len(before) :]
