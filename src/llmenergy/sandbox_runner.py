"""Run one untrusted program inside the sandbox; started by `llmenergy.sandbox`, never imported.

It runs under `python -I`, so it imports nothing but the standard library.

argv:   the program's path, then the resource limits as JSON ({"RLIMIT_AS": bytes, ...}).
stdin:  one line, the verdict token. The token is written to stdout only after the program ran
        to its end, so a program that stops early with a zero status (`sys.exit(0)`,
        `os._exit(0)`) is not mistaken for one that passed its tests.
"""

import contextlib
import json
import os
import resource
import sys


def main() -> None:
    program, limits = sys.argv[1], json.loads(sys.argv[2])
    token = sys.stdin.readline().strip()
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    with open(program, encoding="utf-8") as handle:
        source = handle.read()
    code = compile(source, "program.py", "exec")
    sys.argv = ["program.py"]
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.__stdout__.flush()  # the program's own output first
    os.write(1, f"\n{token}\n".encode())


if __name__ == "__main__":
    main()
