#!/usr/bin/env python3
"""Which program shape of the CUDA prefill attention (YOCO_ATTN_PREFILL: default, wide or tall) a
GPU run should compare the models with, from what scripts/gpu-check.sh measured in the same call:
the default shape's prefill benches in its benches.txt, and each other shape's check and prefill
benches in its variants.txt.

A shape other than the default is chosen only if its attention check passed in that call (every
case), it was timed on every prefill shape the default was, and its times are lower by more than
MARGIN on their geometric mean (the benches' medians swing by a few percent between calls);
otherwise the default stays. Prints the shape on the first line and the reason, with each shape's
mean time ratio, on the second.

  fastest_prefill.py BENCHES VARIANTS   the choice (two lines, to stdout)
  fastest_prefill.py --self-test        checks the rule on made-up outputs; exit 1 on a failure
  fastest_prefill.py --describe BENCHES VARIANTS
                                        what this script reads in real outputs: the CUDA prefill
                                        benches it finds in BENCHES, and each shape's section in
                                        VARIANTS with whether its check passed (so that a dry run
                                        can tell the parsing still matches what the scripts print)
"""
import math
import re
import sys

from side_by_side import YOCO_LINE

# The CUDA prefill benches' labels (crates/gqa/benches/gqa.rs): attention/prefill-cuda:0-bf16/SHAPE.
PREFILL_LABEL = re.compile(r"^attention/prefill-cuda[^/]*/")
# scripts/gpu-check.sh's header of each shape's section in variants.txt.
SECTION = re.compile(r"^== the (?P<shape>\w+) prefill kernel")
# `yoco check`'s last line (src/cli/check.rs).
CHECKED = re.compile(r"^check \S+: (?P<passed>\d+) of (?P<total>\d+) cases passed")
MARGIN = 0.03


def prefill_times(lines):
    """label -> milliseconds of every CUDA prefill bench line among `lines`."""
    times = {}
    for text in lines:
        m = YOCO_LINE.match(text.strip())
        if m and PREFILL_LABEL.match(m["label"]):
            times.setdefault(m["label"], float(m["ms"]))
    return times


def sections(lines):
    """shape -> (its prefill times, whether its check passed every case) from variants.txt."""
    found, shape, body = {}, None, []

    def close():
        if shape is not None:
            checks = [CHECKED.match(t.strip()) for t in body]
            checks = [c for c in checks if c]
            passed = bool(checks) and all(c["passed"] == c["total"] for c in checks)
            found[shape] = (prefill_times(body), passed)

    for text in lines:
        m = SECTION.match(text.strip())
        if m:
            close()
            shape, body = m["shape"], []
        else:
            body.append(text)
    close()
    return found


def choose(default_times, variants):
    """(shape, reason) by the rule in this file's docstring."""
    if not default_times:
        return "default", "no CUDA prefill bench of the default shape was timed: the default stays"
    ratios, refused = {}, []
    for shape, (times, passed) in sorted(variants.items()):
        missing = [label for label in default_times if label not in times]
        if not passed:
            refused.append(f"{shape}: its attention check did not pass every case")
        elif missing:
            refused.append(f"{shape}: {len(missing)} of the default's {len(default_times)} prefill shapes not timed")
        else:
            logs = [math.log(times[label] / default_times[label]) for label in default_times]
            ratios[shape] = math.exp(sum(logs) / len(logs))
    summary = "; ".join([f"{shape} {ratio:.3f}× the default's time" for shape, ratio in sorted(ratios.items())] + refused)
    best = min(ratios, key=ratios.get, default=None)
    if best is not None and ratios[best] < 1 - MARGIN:
        return best, f"geometric mean over {len(default_times)} prefill benches: {summary}"
    return "default", f"no other shape faster by more than {MARGIN:.0%} (geometric mean over {len(default_times)} prefill benches): {summary or 'none timed'}"


def self_test():
    def line(shape, ms):
        return f"attention/prefill-cuda:0-bf16/{shape}: {ms} ms, 300.0 TFLOP/s = 40% of the 750.0 TFLOP/s cuBLAS bf16 GEMM ceiling"

    benches = [line("A", 2.0), line("B", 4.0), "rmsnorm/cuda:0-bf16/8x8: 0.1 ms, 1.0 GB/s = 1% of the 3000.0 GB/s copy ceiling"]
    passed = "check cuda:0: 40 of 40 cases passed; worst error/bound 0.40"

    def variants(wide, tall, wide_check=passed):
        wide_section = ["== the wide prefill kernel (YOCO_ATTN_PREFILL=wide): check, then the prefill benches", wide_check]
        tall_section = ["== the tall prefill kernel (YOCO_ATTN_PREFILL=tall): check, then the prefill benches", passed]
        return wide_section + [line(s, ms) for s, ms in wide] + tall_section + [line(s, ms) for s, ms in tall]

    cases = [
        ("the fastest by its mean", variants([("A", 1.6), ("B", 3.2)], [("A", 1.9), ("B", 3.9)]), "wide"),
        ("within the margin: the default", variants([("A", 1.96), ("B", 3.96)], [("A", 2.5), ("B", 4.5)]), "default"),
        ("a failed check is refused", variants([("A", 1.0), ("B", 2.0)], [("A", 1.9), ("B", 3.8)], "check cuda:0: 39 of 40 cases passed; worst error/bound 3.00"), "tall"),
        ("a shape not timed is refused", variants([("A", 1.0)], [("A", 2.1), ("B", 4.2)]), "default"),
        ("faster at one, slower at the other: the mean", variants([("A", 1.0), ("B", 6.0)], [("A", 2.2), ("B", 4.4)]), "wide"),
    ]
    failures = 0
    for what, v, want in cases:
        got, reason = choose(prefill_times(benches), sections(v))
        if got != want:
            failures += 1
            print(f"fastest_prefill self-test: {what}: chose {got}, expected {want} ({reason})", file=sys.stderr)
    got, _ = choose({}, sections(variants([("A", 1.0), ("B", 2.0)], [])))
    if got != "default":
        failures += 1
        print(f"fastest_prefill self-test: no default timings: chose {got}, expected default", file=sys.stderr)
    print(f"fastest_prefill self-test: {len(cases) + 1 - failures} of {len(cases) + 1} passed")
    return 1 if failures else 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(self_test())
    describe = args[:1] == ["--describe"]
    if describe:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0], errors="replace") as f:
        default_times = prefill_times(f)
    with open(args[1], errors="replace") as f:
        variants = sections(list(f))
    if describe:
        print(f"{len(default_times)} CUDA prefill benches")
        for shape, (times, passed) in sorted(variants.items()):
            print(f"{shape}: check {'passed' if passed else 'not passed'}, {len(times)} CUDA prefill benches")
        return
    shape, reason = choose(default_times, variants)
    print(shape)
    print(reason)


if __name__ == "__main__":
    main()
