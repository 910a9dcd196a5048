"""Where a profiled server spent its time: the top functions of a py-spy ``raw`` profile.

``python -m bench.hotspots bench/profiles/huddle-n64.txt`` reads the collapsed stacks that
``bench/sfu.py --profile-dir`` recorded (one ``frame;frame;... count`` line per distinct stack) and
prints, as shares of the busy samples, the functions with the most time *in* them (self) and
*under* them (inclusive). Samples of a thread waiting (the event loop in ``select``, a worker on its
queue) are left out: py-spy counts some of them as active.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

#: Leaf functions that mean "waiting for work" (Python frames, and native ones with --native).
IDLE = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "Condition.wait (threading.py)",
        "epoll_wait (libc.so.6)",
    }
)


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``; ``sendto (libc.so.6)`` stays."""
    name, _, where = frame.partition(" (")
    file = where.removesuffix(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def hotspots(path: Path) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """Busy samples, and busy samples per function: self, inclusive."""
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        functions = [_function(frame) for frame in stack.split(";")]
        if functions[-1] in IDLE:
            continue
        total += samples
        own[functions[-1]] += samples
        for function in set(functions):
            inclusive[function] += samples
    return total, own, inclusive


def main(argv: list[str] | None = None) -> None:
    """Print the top functions of each profile given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.profiles:
        total, own, inclusive = hotspots(path)
        print(f"== {path}: {total} busy samples")
        for title, counter in (("self", own), ("inclusive", inclusive)):
            print(f"-- {title}")
            for function, samples in counter.most_common(args.top):
                print(f"{100 * samples / total:5.1f}%  {function}")


if __name__ == "__main__":
    main()
