"""Exit 1 with one ``error:`` line when this machine cannot listen on the
rendezvous port; tools/dist_train.sh and dist_test.sh run it before
torchrun, which otherwise dies with a 40-line traceback (EADDRINUSE).

    python tools/check_port.py PORT SCRIPT NNODES

Only the node with NODE_RANK 0 listens on PORT (torchrun's TCP store); the
other nodes connect to MASTER_ADDR:PORT, so the scripts run this on node 0
only.
"""
import sys

from gcvit_mm.utils import fail
from gcvit_mm.utils.ports import free_port, port_problem


def main(argv) -> int:
    value, script, nnodes = (argv + ['', 'the script', '1'])[:3]
    if not value.isdigit() or not 0 < int(value) < 65536:
        problem = 'is not a port number (1-65535)'
    else:
        problem = port_problem(int(value))
    if problem is None:
        return 0
    every_node = ' (the same PORT on every node)' if nnodes != '1' else ''
    fail(f'PORT={value} {problem}; set a free port{every_node}, e.g. '
         f'PORT={free_port()} bash {script} ...')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
