"""Two nodes, each a network namespace with one CPU process, joined by a
veth pair: ``NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<node 0's address>
PORT=... bash tools/dist_train.sh CONFIG 1`` trains and evaluates.

This machine's hostname resolves to a loopback address (as in most
containers), so gloo would bind both ranks to 127.0.0.1 without the
GLOO_SOCKET_IFNAME that tools/torchrun.py sets (gcvit_mm.utils.dist_env).
Needs root and ``ip netns``; skipped otherwise."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from test_segmentation_train import REPO, tiny_config

# 198.18.0.0/15 is reserved for network tests (RFC 2544); the namespaces
# have no other interface, so nothing leaves them.
ADDRS = ('198.18.0.1', '198.18.0.2')
TIMEOUT_S = 300
AFTER_FAILURE_S = 20


def ip(*args):
    return subprocess.run(['ip', *args], capture_output=True, text=True)


@pytest.fixture
def two_nodes():
    """Two network namespaces joined by a veth pair; yields
    [(namespace, interface, address)] for node 0 and node 1."""
    if os.geteuid() != 0 or shutil.which('ip') is None:
        pytest.skip('needs root and iproute2 (ip netns) to make two nodes')
    tag = f'g{os.getpid() % 100000}'
    nodes = [(f'{tag}n{i}', f'{tag}v{i}', ADDRS[i]) for i in range(2)]
    made = []
    try:
        for ns, _, _ in nodes:
            out = ip('netns', 'add', ns)
            if out.returncode != 0:
                pytest.skip(f'ip netns add does not work here: '
                            f'{out.stderr.strip()}')
            made.append(ns)
        (ns0, if0, _), (ns1, if1, _) = nodes
        steps = [('link', 'add', if0, 'netns', ns0, 'type', 'veth', 'peer',
                  'name', if1, 'netns', ns1)]
        for ns, ifname, addr in nodes:
            steps += [('-n', ns, 'addr', 'add', f'{addr}/24', 'dev', ifname),
                      ('-n', ns, 'link', 'set', ifname, 'up'),
                      ('-n', ns, 'link', 'set', 'lo', 'up')]
        for step in steps:
            out = ip(*step)
            assert out.returncode == 0, f'ip {" ".join(step)}: {out.stderr}'
        yield nodes
    finally:
        for ns in made:  # deleting a namespace deletes its end of the pair
            ip('netns', 'delete', ns)


def test_two_nodes_train_and_evaluate(tmp_path, two_nodes):
    config = tiny_config(tmp_path / 'tiny.py', max_iters=2)
    env = dict(os.environ, GCVIT_MM_DATA=str(tmp_path / 'data'),
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', NNODES='2',
               MASTER_ADDR=ADDRS[0], PORT='29500')
    env.pop('GLOO_SOCKET_IFNAME', None)
    procs = []
    try:
        for rank, (ns, _, _) in enumerate(two_nodes):
            log = open(tmp_path / f'node{rank}.log', 'w')
            procs.append(subprocess.Popen(
                ['ip', 'netns', 'exec', ns, 'bash', 'tools/dist_train.sh',
                 config, '1', '--work-dir', str(tmp_path / 'work')],
                cwd=REPO, env=dict(env, NODE_RANK=str(rank)), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        # A node that failed leaves the other waiting for it (gloo's own
        # timeout is 30 min): give that one a little time to say why.
        deadline = time.monotonic() + TIMEOUT_S
        while (time.monotonic() < deadline
               and any(p.poll() is None for p in procs)):
            if any(p.poll() not in (None, 0) for p in procs):
                deadline = min(deadline, time.monotonic() + AFTER_FAILURE_S)
            time.sleep(1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                # torchrun (this pid, after ip netns exec and dist_train.sh
                # exec it) runs its ranks in sessions of their own; on
                # SIGTERM it stops them before it exits.
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    logs = [(tmp_path / f'node{r}.log').read_text() for r in range(2)]
    for rank, ((_, ifname, addr), proc, log) in enumerate(
            zip(two_nodes, procs, logs)):
        assert proc.returncode == 0, f'node {rank}:\n{log[-4000:]}'
        assert (f'GLOO_SOCKET_IFNAME={ifname}: gloo uses {ifname} ({addr}), '
                f'the interface that reaches MASTER_ADDR={ADDRS[0]} '
                '(NNODES=2)') in log, log[-4000:]
    # rank 0 (node 0) logs the job: 2 ranks, 2 iterations, then validation
    # of the 4 images split over the 2 nodes
    assert 'Distributed training: True' in logs[0], logs[0][-4000:]
    assert re.search(r'Iter\(train\) \[2/2\]', logs[0]), logs[0][-4000:]
    assert re.search(r'Iter\(val\) \[2/2\]', logs[0]), logs[0][-4000:]
    assert re.search(r'mIoU: \d+\.\d+', logs[0]), logs[0][-4000:]
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
