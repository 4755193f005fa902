#!/usr/bin/env python3
"""Judge an Autobahn report (index.json) written by kosoku.

    autobahn_check.py OUTDIR/index.json [--agent NAME] [--expect-cases N]

Passes (exit 0) when the report holds N distinct case ids (default: every case
kosoku knows, 517) and every case's `behavior` and `behaviorClose` is one of
OK, NON-STRICT, INFORMATIONAL. Otherwise prints each failing case id with its
behaviour (and the ids of missing cases) and exits 1. Without --agent the
cases of every agent in the report are judged (a server under test names
itself by its `Server` header, which we do not prescribe).
"""

import argparse
import json
import sys

ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}


def sort_key(case_id: str):
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def known_cases():
    try:
        from kosoku.cases import CASES  # type: ignore

        return set(CASES)
    except Exception:  # noqa: BLE001 - only used to name missing cases
        return None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("index")
    p.add_argument("--agent")
    p.add_argument("--expect-cases", type=int)
    args = p.parse_args()

    try:
        with open(args.index) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL cannot read the Autobahn report {args.index}: {e}")
        return 1

    agents = sorted(index)
    if args.agent is not None:
        if args.agent not in index:
            print(f"FAIL agent {args.agent!r} not in the report (agents: {agents})")
            return 1
        agents = [args.agent]

    known = known_cases()
    expected = args.expect_cases if args.expect_cases is not None else len(known or ())
    if not agents:
        print("FAIL the report has no agent")
        return 1

    # Without --agent, the agents' cases are judged together (normally there
    # is exactly one agent).
    entries = {}
    for agent in agents:
        for case_id, entry in index[agent].items():
            entries.setdefault(case_id, []).append((agent, entry))

    bad = []
    bad_ids = set()
    for case_id in sorted(entries, key=sort_key):
        for agent, entry in entries[case_id]:
            b, bc = entry.get("behavior"), entry.get("behaviorClose")
            if b not in ACCEPTED or bc not in ACCEPTED:
                bad_ids.add(case_id)
                bad.append(
                    f"  case {case_id}: behavior={b} behaviorClose={bc} "
                    f"remoteCloseCode={entry.get('remoteCloseCode')} "
                    f"agent={agent!r} report={entry.get('reportfile')}"
                )
    missing = sorted(known - set(entries), key=sort_key) if known is not None else []
    print(
        f"autobahn (agents {agents}): {len(entries)} cases (expected {expected}), "
        f"{len(entries) - len(bad_ids)} passed, "
        f"{len(bad_ids)} failed, {len(missing)} missing"
    )
    for line in bad:
        print(line)
    if missing:
        shown = ", ".join(missing[:50]) + (" ..." if len(missing) > 50 else "")
        print(f"  missing cases: {shown}")
    ok = not bad and not missing and len(entries) == expected
    print("autobahn: PASS" if ok else "autobahn: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
