"""Entry point of the ``safepce`` console script.

bounds sits at the top of the import flow (tabular <- theory <- bounds), so the command line is
assembled here: theory's commands, with the bounds functions they report (covering numbers)
passed down as hooks, plus the bounds commands (``verify``).
"""

from __future__ import annotations

import argparse
import sys
import time

from theory import cli as theory_cli

from .covering import covering_number


def run_verify_command(args: argparse.Namespace) -> int:
    """Check the paper's claims on exact quantities; print a table, write verify.json and plots."""
    from .verify import claims_json, claims_table, run_verify

    if args.workers < 1:
        raise theory_cli.UsageError(f"--workers: expected a positive integer; got {args.workers}")
    out = theory_cli.prepare_output(args.out)
    start = time.perf_counter()
    claims = run_verify(out, quick=args.quick, workers=args.workers, progress=not args.quiet)
    theory_cli.write_json(out / "verify.json", claims_json(claims))
    print(claims_table(claims))
    failed = [c for c in claims if not c.passed]
    for claim in failed:
        print(f"FAIL {claim.claim}: {claim.note}")
    print(f"{len(claims) - len(failed)} passed, {len(failed)} failed in "
          f"{time.perf_counter() - start:.1f} s; wrote {out / 'verify.json'} and plots")
    return 0


def add_commands(commands) -> None:
    verify = commands.add_parser(
        "verify", help="check the paper's lemmas and theorems numerically",
        description="Lemma C.3, Lemma 3.5, Lemma 4.5 safety, Theorem 4.2's explicit regret "
                    "bound, the hard family of Theorem 5.1 and its explicit lower bound's "
                    "slopes, the scaled preset and the published experiment's safety claim.")
    verify.add_argument("--out", default="results/verify", help="output folder")
    verify.add_argument("--quick", action="store_true",
                        help="small sizes (under 3 minutes on 2 cores)")
    verify.add_argument("--workers", type=int, default=2, help="worker processes")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.set_defaults(run=run_verify_command)


def main(argv: list[str] | None = None) -> int:
    return theory_cli.main(argv, hooks={"covering_number": covering_number},
                           parser=theory_cli.build_parser(extend=add_commands))


if __name__ == "__main__":
    sys.exit(main())
