"""TCP ports for torchrun's rendezvous: is one free, and a free one."""
import errno
import socket
from typing import Optional


def port_problem(port: int) -> Optional[str]:
    """Why this machine cannot listen on ``port`` (worded to follow 'PORT=N
    ...'), or None when it can. Bound as torchrun's TCP store binds it: on
    every interface, with SO_REUSEADDR (a port left in TIME_WAIT by the last
    job is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('', port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return 'is already in use on this machine (another job?)'
            return f'cannot be listened on ({e.strerror})'
    return None


def free_port() -> int:
    """A port no process listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]
