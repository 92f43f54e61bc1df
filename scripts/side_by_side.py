#!/usr/bin/env python3
"""Sets each peer's time beside yoco's on the same shape: reads yoco's bench output (the summary
lines `LABEL: T ms, RATE = P% of the … ceiling`) and scripts/peers.py's output (`peer/NAME: T ms,
RATE [beside LABEL; LABEL]`), and prints one Markdown table row per (peer, yoco label) pair, with
the peer's time over yoco's (above 1: yoco is faster).

  side_by_side.py YOCO_OUTPUT PEERS_OUTPUT [YOCO_OUTPUT PEERS_OUTPUT ...]
                                               the table (Markdown, to stdout). Several rounds (a
                                               pair of outputs each, run one after the other):
                                               each side's fastest time per label, with the line
                                               (rates, ceilings) of the round it came from, so
                                               that a minute of a busy machine does not decide a
                                               ratio
  side_by_side.py --require LABELS YOCO_OUTPUT exit 1, naming them, if any label listed in LABELS
                                               (one per line: `peers.py --labels`) has no line in
                                               YOCO_OUTPUT (a renamed bench would silently lose its
                                               peer otherwise)
"""
import argparse
import re
import sys

# A yoco summary line: the label, optional parenthesised notes (tokens/s, FLOP conventions, "weights
# read"), then the time and the rest. The label itself has no spaces.
YOCO_LINE = re.compile(r"^(?P<label>\S+)(?: \([^)]*\))*: (?P<ms>[0-9.]+) ms, (?P<rate>.*)$")
PEER_LINE = re.compile(r"^peer/(?P<name>.+?): (?P<ms>[0-9.]+) ms(?:, (?P<rate>[^\[]*?))? \[beside (?P<beside>[^\]]*)\]$")


def yoco_lines(path):
    """label -> (milliseconds, [rates]); a label printed twice (a time quoted against two ceilings)
    keeps its first time and both rates."""
    found = {}
    with open(path, errors="replace") as f:
        for text in f:
            m = YOCO_LINE.match(text.strip())
            if m:
                ms, rates = found.setdefault(m["label"], (float(m["ms"]), []))
                rates.append(m["rate"])
    return found


def fastest(entries):
    """(key, milliseconds, value) from several rounds -> {key: value} of each key's shortest time,
    in the order the keys first appear."""
    best = {}
    for key, ms, value in entries:
        if key not in best or ms < best[key][0]:
            best[key] = (ms, value)
    return {key: value for key, (ms, value) in best.items()}


def fastest_yoco(paths):
    """yoco_lines over several rounds: per label, the round with the shortest time."""
    return fastest((label, ms, (ms, rates)) for path in paths for label, (ms, rates) in yoco_lines(path).items())


def peer_lines(path):
    with open(path, errors="replace") as f:
        for text in f:
            m = PEER_LINE.match(text.strip())
            if m:
                yield m["name"], float(m["ms"]), m["rate"] or "", [b.strip() for b in m["beside"].split(";")]


def fastest_peers(paths):
    """peer_lines over several rounds: per peer (its name without the notes in parentheses, such
    as a rate in tokens/s, which differ from round to round), the round with the shortest time,
    in the first round's order."""
    lines = (line for path in paths for line in peer_lines(path))
    return list(fastest((re.sub(r"( \([^)]*\))+$", "", line[0]), line[1], line) for line in lines).values())


def table(yoco, peers):
    rows = [
        "| yoco bench | yoco | yoco's rate | peer | peer | peer's rate | peer time ÷ yoco time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, peer_ms, peer_rate, beside in peers:
        for label in beside:
            if label in yoco:
                ms, rates = yoco[label]
                ratio = f"**{peer_ms / ms:.2f}**" if ms > 0 else "—"
                rows.append(f"| `{label}` | {ms:.3f} ms | {'; '.join(rates)} | `{name}` | {peer_ms:.3f} ms | {peer_rate} | {ratio} |")
            else:
                rows.append(f"| `{label}` | no line in yoco's output | | `{name}` | {peer_ms:.3f} ms | {peer_rate} | — |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require", metavar="LABELS", help="check that every label in this file has a yoco line")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args()
    if args.require:
        if len(args.files) != 1:
            parser.error("--require takes one YOCO_OUTPUT")
        yoco = yoco_lines(args.files[0])
        with open(args.require) as f:
            missing = [label for label in (t.strip() for t in f) if label and label not in yoco]
        for label in missing:
            print(f"side_by_side: no yoco bench line for the peer label {label}", file=sys.stderr)
        sys.exit(1 if missing else 0)
    if len(args.files) % 2 != 0:
        parser.error("give YOCO_OUTPUT and PEERS_OUTPUT, a pair per round")
    print(table(fastest_yoco(args.files[0::2]), fastest_peers(args.files[1::2])))


if __name__ == "__main__":
    main()
