"""A fork server for the mutation runs of tools/mutation.py: mutmut 2 starts its test command
once per mutant, and most of that command's time went to starting Python, pytest and the
libraries (about 1.5 s of every run). The server imports the libraries once; each run is a
fork that imports the project afresh from disk (where mutmut has just written the mutant) and
runs pytest with the client's arguments, output and exit code.

    python tools/mutation_server.py serve SOCKET       # in the tree under test
    python tools/mutation_server.py run SOCKET ARGS…   # mutmut's test command

Written by hand: no library on PyPI serves pytest runs from a forked, pre-imported process
for a runner that is a plain command (mutmut 3 forks, but only as its own runner).
"""

import os
import select
import signal
import socket
import sys

# A run that outlives this is killed (mutmut's own timeout only kills the client).
RUN_LIMIT_SECONDS = 600


def serve(path: str) -> None:
    # The libraries every run imports, but nothing of the project: the project must come from
    # the files on disk at each fork, mutated or not.
    import celery  # noqa: F401
    import django  # noqa: F401
    import hypothesis  # noqa: F401
    import import_export  # noqa: F401
    import kombu  # noqa: F401
    import openpyxl  # noqa: F401
    import psycopg  # noqa: F401
    import pytest
    import pytest_django  # noqa: F401
    import redis  # noqa: F401

    # mutmut writes each mutant over the module within the same second, often with the same
    # size: a .pyc checked by time and size would be taken for it.
    sys.dont_write_bytecode = True
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    while True:
        conn, _ = server.accept()
        with conn:
            message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 2)
            args = message.decode().split("\0")
            child = os.fork()
            if child == 0:
                server.close()
                conn.close()
                for fd, target in zip(fds, (1, 2), strict=True):
                    os.dup2(fd, target)
                signal.alarm(RUN_LIMIT_SECONDS)
                try:
                    code = pytest.main(args)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(int(code))
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{_wait(child, conn)}\n".encode())


def _wait(child: int, conn: socket.socket) -> int:
    """The child's exit code; kills it if the client goes away first (mutmut's timeout)."""
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select([conn], [], [], 0.02)
        if readable and not conn.recv(1, socket.MSG_PEEK):
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            return -signal.SIGKILL


def run(path: str, args: list[str]) -> int:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    socket.send_fds(client, ["\0".join(args).encode()], [1, 2])
    answer = client.makefile().readline()
    return int(answer) if answer.strip() else 1


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "serve":
        serve(path)
    else:
        sys.exit(run(path, rest))
