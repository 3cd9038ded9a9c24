"""torchrun (``python -m torch.distributed.run``, same arguments) that ends a
failed job with one line instead of its 40-line ChildFailedError traceback.

The failing process has printed its own ``error: ...`` line already (the
tools report bad input that way); torchrun then stops the other processes
and raises ChildFailedError out of its ``main``, whose traceback and
failure table bury that line. tools/dist_train.sh and dist_test.sh run
this instead of ``python -m torch.distributed.run``. On several nodes it
first sets GLOO_SOCKET_IFNAME (see gcvit_mm.utils.dist_env).
"""
import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, parse_min_max_nnodes, run

from gcvit_mm.utils.dist_env import NetworkSetupError, set_gloo_socket_ifname


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        note = set_gloo_socket_ifname(args.master_addr,
                                      parse_min_max_nnodes(args.nnodes)[1])
    except NetworkSetupError as e:
        print(f'error: {e}', file=sys.stderr, flush=True)
        return 1
    if note:
        print(f'torchrun: {note}', flush=True)
    try:
        run(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        print(f'torchrun: {args.training_script} failed first on rank '
              f'{rank} (exit code {failure.exitcode}); its output above '
              f'says why. {len(e.failures)} process(es) failed or were '
              f'stopped.', file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
