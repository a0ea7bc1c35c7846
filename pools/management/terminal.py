"""What the management commands share: finding a pool, running a job, a bar, and their answers.

A command runs its job in this process with the same claim a worker takes (pools/jobs.py), so
it works with no worker running and cannot run a job twice beside one: if a worker has the job
already, the command watches it finish instead. On a terminal a bar shows the job's progress
(tqdm, on stderr); in a pipe, or with --json, nothing but the answer is written.
"""

import json
import sys
import threading
import time

from django.core.management.base import CommandError
from django.db import connection

from pools.jobs import Job
from pools.models import Pool

# Exit statuses the commands share: a script tells "done, some rows refused" from "failed".
DONE = 0
ROWS_REFUSED = 1
FAILED = 2


def pool_named(name: str) -> Pool:
    """The pool whose pool ID (or numeric id) is `name`."""
    pool = Pool.objects.filter(slug=name).first()
    if pool is None and name.isdigit():
        pool = Pool.objects.filter(pk=int(name)).first()
    if pool is None:
        raise CommandError(f"No pool has the ID {name!r} (see `manage.py pool_status`).")
    return pool


def on_terminal(options) -> bool:
    return not options.get("json") and sys.stderr.isatty()


def job_run_watched(job: Job, run, *, bar: bool, poll: float = 0.25) -> Job:
    """Run `run()` (the job's service) until the job is finished, showing a bar if asked.

    A run that returns with the job still unfinished found it held (a live worker, or another
    job of the pool first): it is tried again, and meanwhile the job's row is watched.
    """

    def run_until_finished():
        while True:
            run()
            job.refresh_from_db()
            if job.is_finished:
                return
            time.sleep(1)

    if not bar:
        run_until_finished()
        return job

    from tqdm import tqdm

    failure = []

    def work():
        try:
            run_until_finished()
        except Exception as error:  # shown once the bar is closed
            failure.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    with tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True) as progress:
        while thread.is_alive():
            thread.join(poll)
            job.refresh_from_db()
            progress.update(job.progress_percent - progress.n)
    if failure:
        raise failure[0]
    job.refresh_from_db()
    return job


def answer(command, options, data: dict, lines: list[str]) -> None:
    """Write the command's answer: JSON with --json, else the lines for a reader."""
    if options.get("json"):
        command.stdout.write(json.dumps(data, default=str, ensure_ascii=False))
    else:
        for line in lines:
            command.stdout.write(line)
