#!/usr/bin/env python3
"""Which program shape of the CUDA prefill attention (YOCO_ATTN_PREFILL: default, wide, tall or wgmma) a
GPU run should compare the models with, from what scripts/gpu-check.sh measured in the same call:
the default shape's prefill benches in its benches.txt, each other shape's check and prefill
benches in its variants.txt, and each other shape's memcheck in its sanitizer.txt.

Only the benches whose label contains the --match text count (scripts/gpu-run.sh passes the shape
of the comparison's attention: YOCO-3B's Transformer twin prefills with head dim 128, causal; a
shape that wins on windows or at head dim 64 would not make that run faster). A shape other than
the default is chosen only if its attention check passed every case in that call, its memcheck
did not fail (one the call's deadline skipped is said so, not held against it: the CPU emulator
checks every access of every shape in CI), it was timed on every counted bench the default was,
and its times are lower by more than MARGIN on their geometric mean: the default's benches run
minutes before the others', and a GPU's clocks drift by a few percent over that. Otherwise the
default stays. Prints the shape on the first line and the reason on the second.

  fastest_prefill.py [--match TEXT] BENCHES VARIANTS [SANITIZER]
                                        the choice (two lines, to stdout)
  fastest_prefill.py --describe BENCHES VARIANTS [SANITIZER]
                                        what this script reads in real outputs: the CUDA prefill
                                        benches in BENCHES, and each shape's section in VARIANTS
                                        (and SANITIZER) with what it says (so that a dry run can
                                        tell the parsing still matches what the scripts print)
  fastest_prefill.py --self-test        checks the rule on made-up outputs; exit 1 on a failure
"""
import argparse
import math
import re
import sys

from side_by_side import YOCO_LINE

# The CUDA prefill benches' labels (crates/gqa/benches/gqa.rs): attention/prefill-cuda:0-bf16/SHAPE.
PREFILL_LABEL = re.compile(r"^attention/prefill-cuda[^/]*/")
# scripts/gpu-check.sh's header of each shape's section in variants.txt, and in sanitizer.txt.
SECTION = re.compile(r"^== the (?P<shape>\w+) prefill kernel")
MEMCHECK = re.compile(r"^== memcheck with the (?P<shape>\w+) prefill kernel")
# The end of one of scripts/gpu-check.sh's steps, or a step its deadline skipped.
STEP_END = re.compile(r"^== (?:exit (?P<rc>\d+) after|(?P<skipped>skipped))")
# `yoco check`'s last line (src/cli/check.rs).
CHECKED = re.compile(r"^check \S+: (?P<passed>\d+) of (?P<total>\d+) cases passed")
MARGIN = 0.05


def prefill_times(lines, match=""):
    """label -> milliseconds of every CUDA prefill bench line among `lines` whose label contains
    `match`."""
    times = {}
    for text in lines:
        m = YOCO_LINE.match(text.strip())
        if m and PREFILL_LABEL.match(m["label"]) and match in m["label"]:
            times.setdefault(m["label"], float(m["ms"]))
    return times


def split_sections(lines, header):
    """shape -> the lines of its section (from its header to the next one)."""
    found, shape = {}, None
    for text in lines:
        m = header.match(text.strip())
        if m:
            shape = m["shape"]
            found[shape] = []
        elif shape is not None:
            found[shape].append(text)
    return found


def variants(lines, match=""):
    """shape -> (its prefill times, whether its check passed every case) from variants.txt."""
    found = {}
    for shape, body in split_sections(lines, SECTION).items():
        checks = [c for c in (CHECKED.match(t.strip()) for t in body) if c]
        found[shape] = (prefill_times(body, match), bool(checks) and all(c["passed"] == c["total"] for c in checks))
    return found


# The exit statuses of a step its time limit stopped (`timeout`, then its kill).
TIMED_OUT = {"124", "137"}


def memchecks(lines):
    """shape -> "passed", "failed (exit N)", "cut short (exit N)" or "not run" from sanitizer.txt.
    A memcheck its time limit stopped found nothing wrong in what it ran: it is not a failure."""
    found = {}
    for shape, body in split_sections(lines, MEMCHECK).items():
        ends = [e for e in (STEP_END.match(t.strip()) for t in body) if e]
        if not ends or ends[0]["skipped"]:
            found[shape] = "not run"
        elif ends[0]["rc"] == "0":
            found[shape] = "passed"
        elif ends[0]["rc"] in TIMED_OUT:
            found[shape] = f"cut short (exit {ends[0]['rc']})"
        else:
            found[shape] = f"failed (exit {ends[0]['rc']})"
    return found


def choose(default_times, shapes, memcheck):
    """(shape, reason) by the rule in this file's docstring."""
    if not default_times:
        return "default", "no CUDA prefill bench of the default shape was timed: the default stays"
    ratios, notes = {}, []
    for shape, (times, passed) in sorted(shapes.items()):
        missing = [label for label in default_times if label not in times]
        sanitized = memcheck.get(shape, "not run")
        if not passed:
            notes.append(f"{shape}: its attention check did not pass every case")
        elif sanitized.startswith("failed"):
            notes.append(f"{shape}: its memcheck {sanitized}")
        elif missing:
            notes.append(f"{shape}: {len(missing)} of the default's {len(default_times)} counted prefill benches not timed")
        else:
            logs = [math.log(times[label] / default_times[label]) for label in default_times]
            ratios[shape] = math.exp(sum(logs) / len(logs))
            notes.append(f"{shape} {ratios[shape]:.3f}× the default's time (memcheck {sanitized})")
    counted = f"geometric mean over {len(default_times)} prefill bench(es): {'; '.join(notes) or 'no other shape timed'}"
    best = min(ratios, key=ratios.get, default=None)
    if best is not None and ratios[best] < 1 - MARGIN:
        return best, counted
    return "default", f"no other shape faster by more than {MARGIN:.0%}; {counted}"


def self_test():
    def line(shape, ms):
        return f"attention/prefill-cuda:0-bf16/{shape}: {ms} ms, 300.0 TFLOP/s = 40% of the 750.0 TFLOP/s cuBLAS bf16 GEMM ceiling"

    benches = [line("A-causal", 2.0), line("B-causal", 4.0), line("C-window", 1.0), "rmsnorm/cuda:0-bf16/8x8: 0.1 ms, 1.0 GB/s = 1% of the 3000.0 GB/s copy ceiling"]
    passed = "check cuda:0: 40 of 40 cases passed; worst error/bound 0.40"

    def sections(wide, tall, wide_check=passed):
        text = ["== the wide prefill kernel (YOCO_ATTN_PREFILL=wide): check, then the prefill benches", wide_check]
        text += [line(s, ms) for s, ms in wide]
        text += ["== the tall prefill kernel (YOCO_ATTN_PREFILL=tall): check, then the prefill benches", passed]
        return text + [line(s, ms) for s, ms in tall]

    def sanitizer(wide_end, tall_end):
        return ["== memcheck with the wide prefill kernel (YOCO_ATTN_PREFILL=wide)", "== /x/compute-sanitizer --tool memcheck ... (limit 45s, at 200s)", wide_end,
                "== memcheck with the tall prefill kernel (YOCO_ATTN_PREFILL=tall)", tall_end, "== /x/compute-sanitizer --tool racecheck", "== exit 9 after 80s"]

    clean = sanitizer("== exit 0 after 30s", "== exit 0 after 31s")
    cases = [
        ("the fastest by its mean", sections([("A-causal", 1.6), ("B-causal", 3.2)], [("A-causal", 1.9), ("B-causal", 3.9)]), clean, "causal", "wide"),
        ("within the margin: the default", sections([("A-causal", 1.92), ("B-causal", 3.84)], [("A-causal", 2.5), ("B-causal", 4.5)]), clean, "causal", "default"),
        ("a failed check is refused", sections([("A-causal", 1.0), ("B-causal", 2.0)], [("A-causal", 1.7), ("B-causal", 3.4)], "check cuda:0: 39 of 40 cases passed; worst error/bound 3.00"), clean, "causal", "tall"),
        ("a failed memcheck is refused", sections([("A-causal", 1.0), ("B-causal", 2.0)], [("A-causal", 1.7), ("B-causal", 3.4)]), sanitizer("== exit 9 after 30s", "== exit 0 after 30s"), "causal", "tall"),
        ("a memcheck the deadline skipped is not held against it", sections([("A-causal", 1.0), ("B-causal", 2.0)], []), sanitizer("== skipped (call deadline reached): x", "== skipped (call deadline reached): y"), "causal", "wide"),
        ("nor one its time limit cut short", sections([("A-causal", 1.0), ("B-causal", 2.0)], []), sanitizer("== exit 124 after 12s", "== exit 0 after 30s"), "causal", "wide"),
        ("a bench not timed is refused", sections([("A-causal", 1.0)], [("A-causal", 2.1), ("B-causal", 4.2)]), clean, "causal", "default"),
        ("faster at one, slower at the other: the mean", sections([("A-causal", 1.0), ("B-causal", 6.0)], [("A-causal", 2.2), ("B-causal", 4.4)]), clean, "causal", "wide"),
        ("only the matching benches count", sections([("A-causal", 2.1), ("B-causal", 4.2), ("C-window", 0.1)], [("A-causal", 1.8), ("B-causal", 3.6), ("C-window", 2.0)]), clean, "causal", "tall"),
        ("without a match every bench counts", sections([("A-causal", 1.0), ("B-causal", 2.0)], [("A-causal", 1.8), ("B-causal", 3.6), ("C-window", 2.0)]), clean, "", "default"),
    ]
    failures = 0
    for what, v, san, match, want in cases:
        got, reason = choose(prefill_times(benches, match), variants(v, match), memchecks(san))
        if got != want:
            failures += 1
            print(f"fastest_prefill self-test: {what}: chose {got}, expected {want} ({reason})", file=sys.stderr)
    got, _ = choose({}, variants(sections([("A-causal", 1.0), ("B-causal", 2.0)], [])), memchecks(clean))
    if got != "default":
        failures += 1
        print(f"fastest_prefill self-test: no default timings: chose {got}, expected default", file=sys.stderr)
    print(f"fastest_prefill self-test: {len(cases) + 1 - failures} of {len(cases) + 1} passed")
    return 1 if failures else 0


def read_lines(path):
    """The file's lines; none for a file that is not there (a step that never ran)."""
    try:
        with open(path, errors="replace") as f:
            return list(f)
    except (TypeError, FileNotFoundError):
        return []


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    parser = argparse.ArgumentParser(description="the prefill shape for a GPU run's comparison", epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", default="", help="count only the benches whose label contains this")
    parser.add_argument("--describe", action="store_true", help="print what is read, not the choice")
    parser.add_argument("benches")
    parser.add_argument("variants")
    parser.add_argument("sanitizer", nargs="?")
    args = parser.parse_args()
    default_times = prefill_times(read_lines(args.benches), args.match)
    shapes = variants(read_lines(args.variants), args.match)
    memcheck = memchecks(read_lines(args.sanitizer))
    if args.describe:
        print(f"{len(default_times)} CUDA prefill benches")
        for shape, (times, passed) in sorted(shapes.items()):
            print(f"{shape}: check {'passed' if passed else 'not passed'}, {len(times)} CUDA prefill benches, memcheck {memcheck.get(shape, 'not run')}")
        return
    shape, reason = choose(default_times, shapes, memcheck)
    print(shape)
    print(reason)


if __name__ == "__main__":
    main()
