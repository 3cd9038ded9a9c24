"""gcvit_mm.utils.dist_env: the interface gloo uses on several nodes, and
the one-line errors for a MASTER_ADDR the other nodes cannot reach."""
import os
import socket
import subprocess

import psutil
import pytest
from test_segmentation_train import REPO

from gcvit_mm.utils.dist_env import (GLOO_SOCKET_IFNAME, NetworkSetupError,
                                     set_gloo_socket_ifname)


def loopback_interface() -> str:
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == '127.0.0.1'
               for a in addrs):
            return name
    pytest.skip('no interface holds 127.0.0.1 here')


def test_loopback_master_addr_on_several_nodes_is_one_line_naming_the_fix():
    env = {}
    with pytest.raises(NetworkSetupError) as info:
        set_gloo_socket_ifname('127.0.0.1', 2, env)
    msg = str(info.value)
    assert '\n' not in msg
    assert msg.startswith('MASTER_ADDR=127.0.0.1 is a loopback address here, '
                          'but NNODES=2: the other nodes cannot reach it.')
    assert f'GLOO_SOCKET_IFNAME={loopback_interface()} if all nodes run on '\
        'this machine' in msg
    assert env == {}


def test_localhost_resolves_to_loopback_too():
    with pytest.raises(NetworkSetupError, match='MASTER_ADDR=localhost is a '
                       'loopback address here, but NNODES=3'):
        set_gloo_socket_ifname('localhost', 3, {})


def test_elastic_range_counts_its_maximum():
    """torchrun's --nnodes=1:2 may run on two nodes: the same check."""
    from torch.distributed.run import parse_min_max_nnodes
    with pytest.raises(NetworkSetupError, match='NNODES=2'):
        set_gloo_socket_ifname('127.0.0.1', parse_min_max_nnodes('1:2')[1],
                               {})


def test_a_users_gloo_socket_ifname_is_kept():
    lo = loopback_interface()
    env = {GLOO_SOCKET_IFNAME: lo}
    # even with a loopback MASTER_ADDR: all nodes on one machine is the
    # user's call
    assert set_gloo_socket_ifname('127.0.0.1', 2, env) is None
    assert env == {GLOO_SOCKET_IFNAME: lo}


def test_a_gloo_socket_ifname_that_names_no_interface_is_refused():
    env = {GLOO_SOCKET_IFNAME: f'{loopback_interface()},nosuch0'}
    with pytest.raises(NetworkSetupError) as info:
        set_gloo_socket_ifname('127.0.0.1', 1, env)
    assert str(info.value).startswith(
        f'GLOO_SOCKET_IFNAME={env[GLOO_SOCKET_IFNAME]}: no interface '
        "'nosuch0' on this machine; set it to one of ")


def test_one_node_sets_nothing():
    env = {}
    assert set_gloo_socket_ifname('127.0.0.1', 1, env) is None
    assert env == {}


def test_an_unresolvable_master_addr_is_one_line():
    env = {}
    with pytest.raises(NetworkSetupError, match=r'^MASTER_ADDR=node0\.invalid '
                       r'does not resolve on this machine \(.+\): set '
                       'MASTER_ADDR to the address of node 0'):
        set_gloo_socket_ifname('node0.invalid', 2, env)
    assert env == {}


def test_the_interface_holding_master_addr_is_chosen():
    """On node 0 MASTER_ADDR is one of its own addresses: the interface
    that holds it. (Another node's choice is tested with two network
    namespaces in test_two_nodes.py.)"""
    stats = psutil.net_if_stats()
    found = [(name, a.address)
             for name, addrs in psutil.net_if_addrs().items()
             for a in addrs
             if a.family == socket.AF_INET and stats[name].isup
             and not a.address.startswith('127.')]
    if not found:
        pytest.skip('no IPv4 interface up here besides loopback')
    name, address = found[0]
    env = {}
    line = set_gloo_socket_ifname(address, 2, env)
    assert env == {GLOO_SOCKET_IFNAME: name}
    assert line == (f'GLOO_SOCKET_IFNAME={name}: gloo uses {name} '
                    f'({address}), the interface that reaches '
                    f'MASTER_ADDR={address} (NNODES=2); set '
                    'GLOO_SOCKET_IFNAME to choose another')


def test_dist_train_stops_with_one_line_before_any_rank_starts(tmp_path):
    """The user's command: NNODES=2 with the default MASTER_ADDR."""
    env = dict(os.environ, NNODES='2', NODE_RANK='1', CUDA_VISIBLE_DEVICES='')
    env.pop('MASTER_ADDR', None)
    env.pop(GLOO_SOCKET_IFNAME, None)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', 'configs/upernet/gcvit_xxt_toy_ade.py',
         '1', '--work-dir', str(tmp_path / 'work')],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        'error: MASTER_ADDR=127.0.0.1 is a loopback address here, but '
        'NNODES=2: the other nodes cannot reach it.'), proc.stderr
    assert not (tmp_path / 'work').exists()
