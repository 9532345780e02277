"""Agent sets in words: the one place a list of agent ids is written for people."""

from __future__ import annotations

from collections.abc import Iterable

from commands.i18n import _


def agent_ranges(agents: Iterable[str], max_chars: int = 600) -> str:
    """``1001, 1002, 1003, 1007`` → ``1001-1003, 1007``.

    Only ids of equal width join a run, so leading zeros survive.
    """
    ordered = sorted(set(agents), key=lambda agent: (int(agent), len(agent)))
    runs: list[list[str]] = []
    for agent in ordered:
        if runs:
            last = runs[-1][-1]
            if len(last) == len(agent) and int(agent) == int(last) + 1:
                runs[-1].append(agent)
                continue
        runs.append([agent])
    parts = [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]
    shown: list[str] = []
    length = 0
    for part in parts:
        if length + len(part) > max_chars:
            hidden = sum(len(run) for run in runs[len(shown) :])
            return _("{agents} and {count} more").format(agents=", ".join(shown), count=hidden)
        shown.append(part)
        length += len(part) + 2
    return ", ".join(shown)
