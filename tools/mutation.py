"""Mutation testing of the core modules: `make mutation`, or
`python tools/mutation.py MODULE…` for some of them (names as in MODULES, e.g. loader).

Each module is mutated by mutmut (2.x: one mutant at a time, the module's own tests run
against it, stopping at the first failure) in a copy of the work tree under var/mutation/,
so the work tree itself is never touched; the tests use their own database (DATABASE_URL,
by default promo_mutation on the local PostgreSQL). Prints the score per module and the
diff of every surviving mutant (also left in var/mutation/<module>/survivors.txt).

Slow: every mutant costs a pytest start (about 3 s) plus the tests up to the first failure.
`python tools/mutation.py alerts:low_stock_check,alert_send` mutates only those functions
(a documented subset, for a module whose whole run does not fit the time there is).
"""

import ast
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "mutation"
PYTHON = sys.executable

# Each module (or part of one: a name, the module, its tests, and the functions to mutate if not
# all of them) with the tests that are about it: the whole suite would be hours per module.
MODULES = {
    "readers": (
        "imports/readers.py",
        [
            "tests/imports/test_readers.py",
            # Validation reads with the readers' columns and rows; the loader imports validation.
            "tests/imports/test_validation.py",
            "tests/imports/test_loader.py",
            # FIX_THE_FILE is said by the import's outcome.
            "tests/imports/test_services.py::test_file_level_problem_fails_the_import_and_imports_nothing",
        ],
    ),
    "validation": (
        "imports/validation.py",
        [
            "tests/imports/test_validation.py",
            # The loader reads the dates it stores with validation's to_datetime.
            "tests/imports/test_loader.py",
            # DUPLICATE_IN_FILE is said by the import's report; the upload's look at the file
            # reads dates with DateOrder.readable_as.
            "tests/imports/test_services.py::test_import_report_counts_every_kind_of_row",
            "tests/imports/test_services.py::test_us_dates_in_a_csv_are_read_month_first",
            "tests/imports/test_services.py::test_ambiguous_dates_are_asked_about_on_upload_then_read_as_chosen",
        ],
    ),
    "csv_table": (
        "imports/csv_table.py",
        ["tests/imports/test_readers.py", "tests/imports/test_file_properties.py"],
    ),
    "workbooks": (
        "imports/workbooks.py",
        ["tests/imports/test_readers.py", "tests/imports/test_validation.py"],
    ),
    "csv_records": (
        "imports/csv_records.py",
        [
            "tests/imports/test_readers.py",
            "tests/imports/test_file_properties.py",
            "tests/imports/test_hostile_files.py",
        ],
    ),
    "headers": (
        "imports/headers.py",
        ["tests/imports/test_readers.py", "tests/imports/test_preview.py"],
    ),
    "encodings": (
        "imports/encodings.py",
        ["tests/imports/test_encodings.py", "tests/imports/test_readers.py"],
    ),
    "code_pages": (
        "imports/code_pages.py",
        ["tests/imports/test_encodings.py", "tests/imports/test_readers.py"],
    ),
    "excel_damage": (
        "imports/excel_damage.py",
        ["tests/imports/test_validation.py", "tests/imports/test_hostile_files.py"],
    ),
    "preview": (
        "imports/preview.py",
        ["tests/imports/test_preview.py", "tests/imports/test_preview_admin.py"],
    ),
    "loader": (
        "pools/code_services/loading.py",
        ["tests/imports/test_loader.py", "tests/imports/test_services.py"],
    ),
    "engine": (
        "imports/engine.py",
        ["tests/imports/test_services.py", "tests/imports/test_faults.py"],
    ),
    "assignments": (
        "imports/assignments.py",
        [
            "tests/imports/test_assignments.py",
            "tests/imports/test_assignment_lanes.py",
            "tests/imports/test_assignment_holdings.py",
        ],
    ),
    "jobs": (
        "pools/jobs.py",
        ["tests/pools/test_jobs.py"],
    ),
    "issuing": (
        "pools/code_services/issuing.py",
        [
            "tests/pools/test_issuing.py",
            # Releases and the fallback are issuing.py's too; redemption and holdings tests
            # issue first.
            "tests/pools/test_batches.py",
            "tests/pools/test_redemption.py",
            "tests/pools/test_holdings.py",
            "tests/pools/test_live_pool.py",
            "tests/pools/test_fallback_race.py",
        ],
    ),
    "claims": (
        "pools/code_services/claims.py",
        [
            "tests/pools/test_issuing.py",
            "tests/pools/test_batches.py",
            "tests/notifications/test_alert_crossing.py",
        ],
    ),
    "holdings": (
        "pools/code_services/holdings.py",
        [
            "tests/pools/test_holdings.py",
            "tests/imports/test_assignment_holdings.py",
            "tests/pools/test_batches.py",
        ],
    ),
    "batches": (
        "pools/code_services/batches.py",
        [
            "tests/pools/test_batches.py",
            "tests/pools/test_holdings.py",
            "tests/imports/test_assignments.py",
        ],
    ),
    "redemption": (
        "pools/code_services/redemption.py",
        [
            "tests/pools/test_redemption.py",
            # Multiple-use codes and customer ids are redeemed there; a release refuses a
            # redeemed code; a holder who redeemed keeps the code.
            "tests/pools/test_issuing.py",
            "tests/pools/test_batches.py",
            "tests/pools/test_holdings.py",
        ],
    ),
    "sweeps": (
        "pools/code_services/sweeps.py",
        ["tests/pools/test_sweeps.py", "tests/pools/test_expiry.py"],
    ),
    "withdrawals": (
        "pools/code_services/withdrawals.py",
        [
            "tests/pools/test_sweeps.py",
            "tests/pools/test_live_pool.py",
            "tests/pools/test_code_list_parse.py",
        ],
    ),
    "additions": (
        "pools/code_services/additions.py",
        [
            "tests/pools/test_sweeps.py",
            "tests/pools/test_live_pool.py",
            "tests/imports/test_undo.py",
        ],
    ),
    "alerts": (
        "notifications/services.py",
        [
            "tests/notifications/test_notices.py",
            "tests/notifications/test_alerts.py",
            "tests/notifications/test_abuse.py",
        ],
    ),
    "exports": (
        "pools/exports.py",
        ["tests/pools/test_exports.py", "tests/pools/test_formats.py"],
    ),
    "export_services": (
        "pools/export_services.py",
        ["tests/pools/test_exports.py"],
    ),
}

# parso, mutmut 2's parser, does not know Python 3.10's parenthesized context managers.
_PARENTHESIZED_WITH = re.compile(r"with \(\n(.*?),?\n\s*\):", re.DOTALL)


def parsable(source: Path) -> None:
    """Write `with (a, b as c):` over several lines as `with a, b as c:` (the same code) in the
    copy, so that parso can read the module."""
    text = source.read_text()
    joined = _PARENTHESIZED_WITH.sub(
        lambda m: "with " + " ".join(line.strip() for line in m[1].splitlines()).rstrip(",") + ":",
        text,
    )
    source.write_text(joined)


KILLED = ("ok_killed", "bad_timeout", "ok_suspicious")


def copy_tree(dest: Path) -> None:
    """Copy the files git knows of (tracked or not ignored) to `dest`, afresh. With
    MUTATION_KEEP=1, mutmut's cache of results is kept, so that it re-tests only the mutants
    that survived or are new: quicker while writing tests, but mutmut's stored line numbers go
    stale once lines move (a mutant on a repeated line is then not applied), so a score to
    quote comes from a run without it."""
    cache = dest / ".mutmut-cache"
    kept = None
    if cache.exists() and os.environ.get("MUTATION_KEEP") == "1":
        kept = cache.read_bytes()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(
        ["rsync", "-a", "--from0", "--files-from=-", ".", str(dest)],
        cwd=ROOT,
        input=files,
        check=True,
    )
    if kept is not None:
        cache.write_bytes(kept)


def subset_patch(path: Path, source: str, functions: list[str]) -> Path:
    """Write a patch that adds the named functions' lines, for mutmut's --use-patch-file: only
    the lines a patch adds are mutated."""
    lines = path.read_text().splitlines()
    found = {
        node.name: node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    missing = set(functions) - set(found)
    if missing:
        sys.exit(f"no function {sorted(missing)} in {source}")
    hunks = [f"--- {source}", f"+++ {source}"]
    for name in functions:
        node = found[name]
        start, end = node.lineno, node.end_lineno
        hunks.append(f"@@ -{start - 1},0 +{start},{end - start + 1} @@")
        hunks += [f"+{line}" for line in lines[start - 1 : end]]
    patch = path.parent / f"{path.stem}.subset.patch"
    patch.write_text("\n".join(hunks) + "\n")
    return patch


def run(name: str, env: dict, functions: list[str]) -> tuple[int, int, list[str]]:
    source, tests, *part = MODULES[name]
    functions = functions or (part[0] if part else [])
    dest = WORK / name
    copy_tree(dest)
    parsable(dest / source)
    # Each run is a fork of a server that has imported the libraries (tools/mutation_server.py);
    # schemathesis's pytest plugin costs a third of a second per run and no test here uses it.
    socket_path = dest / ".mutation.sock"
    server = subprocess.Popen(
        ["nice", "-n", "10", PYTHON, str(dest / "tools" / "mutation_server.py"), "serve",
         str(socket_path)],
        cwd=dest, env=env | {"PYTHONPATH": str(dest)},
    )  # fmt: skip
    while not socket_path.exists():
        if server.poll() is not None:
            sys.exit("the mutation test server did not start")
        time.sleep(0.05)
    runner = (
        f"{PYTHON} tools/mutation_server.py run {socket_path} "
        "-x -q --tb=line --reuse-db -p no:cacheprovider -p no:schemathesis " + " ".join(tests)
    )
    command = [
        "nice", "-n", "10", PYTHON, "-m", "mutmut", "run",
        "--paths-to-mutate", source, "--tests-dir", "tests", "--runner", runner,
        "--simple-output", "--no-progress",
    ]  # fmt: skip
    if functions:
        command += ["--use-patch-file", str(subset_patch(dest / source, source, functions))]
    try:
        subprocess.run(command, cwd=dest, env=env | {"PYTHONPATH": str(dest)}, check=False)
    finally:
        server.terminate()
        server.wait()
    with sqlite3.connect(dest / ".mutmut-cache") as db:
        rows = db.execute("SELECT id, status FROM Mutant").fetchall()
    caught = sum(1 for _, status in rows if status in KILLED)
    survivors = []
    for mutant_id, status in rows:
        if status in KILLED:
            continue
        diff = subprocess.run(
            [PYTHON, "-m", "mutmut", "show", str(mutant_id)],
            cwd=dest, env=env, capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        survivors.append(f"# mutant {mutant_id} ({status})\n{diff}")
    (dest / "survivors.txt").write_text("\n".join(survivors))
    return caught, len(rows), survivors


def main(names: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_mutation")
    wanted = [arg.partition(":") for arg in names] or [(name, "", "") for name in MODULES]
    unknown = {name for name, _, _ in wanted} - set(MODULES)
    if unknown:
        sys.exit(f"unknown modules {sorted(unknown)}; known: {', '.join(MODULES)}")
    scores = []
    for name, _, functions in wanted:
        caught, total, survivors = run(name, env, [f for f in functions.split(",") if f])
        print("\n".join(survivors))
        label = f"{name}:{functions}" if functions else name
        scores.append((label, MODULES[name][0], caught, total))
    print("\nMutation score per module (killed, timed out or suspicious / all mutants):")
    for name, source, caught, total in scores:
        share = f"{100 * caught / total:.1f}%" if total else "no mutants"
        print(f"  {name:14} {source:28} {caught:4} / {total:4}  {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
