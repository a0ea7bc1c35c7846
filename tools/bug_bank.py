"""The bank of realistic bugs: `make bug-bank` (all of them), `python tools/bug_bank.py NAME…`
(some), `--check` (each still applies to the code as it is; seconds, run by CI).

Mutation testing changes one token; people change a line or two and write a comment that makes
the change look right. Each bug in tools/bug_bank/*.toml is such a change: a snippet of a module
(`find`, present exactly once) and what a hurried author would write instead (`replace`), with
the tests that should notice (`tests`, a part of `make test`: a bug they catch fails `make test`
too). Each bug is applied alone to a copy of the work tree under var/bug-bank/<database>/ (the
work tree is never touched) and its tests run there against their own database
(DATABASE_URL, by default promo_bug_bank on the local PostgreSQL). Prints caught or missed per
bug and the share caught.
"""

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import PYTHON, ROOT, copy_tree  # noqa: E402

BANK = ROOT / "tools" / "bug_bank"


def bank() -> list[dict]:
    bugs = []
    for path in sorted(BANK.glob("*.toml")):
        for bug in tomllib.loads(path.read_text())["bug"]:
            bugs.append(bug | {"area": path.stem})
    names = [bug["name"] for bug in bugs]
    repeated = {name for name in names if names.count(name) > 1}
    if repeated:
        sys.exit(f"bug names used twice: {sorted(repeated)}")
    return bugs


def applied(bug: dict, root: Path) -> str:
    """The module's text with the bug written in; exits saying which bug no longer applies."""
    text = (root / bug["file"]).read_text()
    found = text.count(bug["find"])
    if found != 1:
        sys.exit(f"{bug['name']}: its snippet occurs {found} times in {bug['file']}, not once")
    changed = text.replace(bug["find"], bug["replace"])
    compile(changed, bug["file"], "exec")
    return changed


def check(bugs: list[dict]) -> int:
    for bug in bugs:
        applied(bug, ROOT)
        missing = [t for t in bug["tests"] if not (ROOT / t.split("::")[0]).exists()]
        if missing:
            sys.exit(f"{bug['name']}: no test file {missing}")
    print(f"{len(bugs)} bugs in the bank, each still applies")
    return 0


def pytest(tests: list[str], env: dict, work: Path) -> subprocess.CompletedProcess:
    command = [PYTHON, "-m", "pytest", "-x", "-q", "--tb=line", "-p", "no:randomly",
               "-p", "no:cacheprovider", *tests]  # fmt: skip
    return subprocess.run(
        command, cwd=work, env=env | {"PYTHONPATH": str(work)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip


def main(args: list[str]) -> int:
    bugs = bank()
    if "--check" in args:
        return check(bugs)
    if args:
        unknown = set(args) - {bug["name"] for bug in bugs}
        if unknown:
            sys.exit(f"unknown bugs {sorted(unknown)}")
        bugs = [bug for bug in bugs if bug["name"] in args]
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_bug_bank")
    # A Redis database of its own too: the real workers of two runs must not take each other's
    # tasks (give each run its own REDIS_URL).
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
    env.setdefault("HYPOTHESIS_PROFILE", "bug-bank")
    # A test that needs Redis or a worker fails without them rather than skipping (as in CI).
    env["CI"] = "1"
    # One copy per database, so that two runs on two databases can go side by side.
    work = ROOT / "var" / "bug-bank" / env["DATABASE_URL"].rsplit("/", 1)[-1]
    copy_tree(work)
    # Without a bug the tests must pass, or a "caught" would mean nothing.
    every_test = sorted({test for bug in bugs for test in bug["tests"]})
    baseline = pytest(every_test, env, work)
    if baseline.returncode != 0:
        print(baseline.stdout[-3000:])
        sys.exit("the bank's tests fail without any bug: fix the tree first")
    results = []
    for bug in bugs:
        module = work / bug["file"]
        original = module.read_text()
        module.write_text(applied(bug, work))
        started = time.monotonic()
        try:
            code = pytest(bug["tests"], env, work).returncode
        finally:
            module.write_text(original)
        seconds = time.monotonic() - started
        # pytest exits 1 when tests failed, 2 when the bug broke their collection (make test
        # fails so too); 3 to 5 say the run itself went wrong (not a catch).
        caught = code in (1, 2)
        results.append((bug, caught))
        verdict = {0: "MISSED", 1: "caught", 2: "caught"}.get(code, f"ERROR {code}")
        print(f"{verdict:6}  {bug['area']:12} {bug['name']}  ({seconds:.0f} s)", flush=True)
    caught = sum(1 for _, was in results if was)
    print(f"\n{caught} of {len(results)} bugs caught")
    for area in sorted({bug["area"] for bug, _ in results}):
        inside = [was for bug, was in results if bug["area"] == area]
        print(f"  {area:12} {sum(inside)} of {len(inside)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
