"""Exit 1 with one ``error:`` line when this machine cannot listen on the
rendezvous port; tools/dist_train.sh and dist_test.sh run it before
torchrun, which otherwise dies with a 40-line traceback (EADDRINUSE).

    python tools/check_port.py PORT SCRIPT NNODES

Only the node with NODE_RANK 0 listens on PORT (torchrun's TCP store); the
other nodes connect to MASTER_ADDR:PORT, so the scripts run this on node 0
only. It prints the line itself instead of using common.fail: importing
tools/common.py loads torch, seconds before every launch.
"""
import errno
import socket
import sys


def port_problem(port: int):
    """Why this machine cannot listen on ``port``, or None."""
    # Bound as torchrun's store binds it: on every interface, with
    # SO_REUSEADDR (so a port left in TIME_WAIT by the last job is free).
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
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def main(argv) -> int:
    value, script, nnodes = (argv + ['', 'the script', '1'])[:3]
    if not value.isdigit() or not 0 < int(value) < 65536:
        problem = 'is not a port number (1-65535)'
    else:
        problem = port_problem(int(value))
    if problem is None:
        return 0
    every_node = ' (the same PORT on every node)' if nnodes != '1' else ''
    print(f'error: PORT={value} {problem}; set a free port{every_node}, '
          f'e.g. PORT={free_port()} bash {script} ...', file=sys.stderr,
          flush=True)
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
