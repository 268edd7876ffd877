"""Summarise a py-spy ``--format raw`` profile: the functions with the most samples.

    python -m bench.flame PROFILE.txt [--top 40] [--filter conversations/]

"self" counts samples where the function was on top of the stack, "total" where it was
anywhere on it (once per stack), both as a share of all samples.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int, contains: str | None) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", f"{'total%':>7} {'self%':>6}  function"]
    for frame, n in total.most_common():
        if contains and contains not in frame:
            continue
        lines.append(f"{100 * n / samples:7.1f} {100 * own[frame] / samples:6.1f}  {frame}")
        if len(lines) >= top + 2:
            break
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--filter", dest="contains")
    parser.add_argument("--self", dest="by_self", action="store_true", help="sort by self time")
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.contains))


if __name__ == "__main__":
    main()
