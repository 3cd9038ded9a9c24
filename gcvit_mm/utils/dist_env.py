"""The network interface gloo uses on a job of several nodes.

Without ``GLOO_SOCKET_IFNAME``, gloo (torch.distributed's CPU backend) binds
each rank to the address that this machine's hostname resolves to, or to
127.0.0.1 when the hostname does not resolve (``createDefaultDevice`` in
torch/csrc/distributed/c10d/ProcessGroupGloo.cpp), and announces that
address to the other ranks. Many machines map their own hostname to a
loopback address in /etc/hosts (Debian's ``127.0.1.1 HOST``, a container's
``127.0.0.1 HOST``): a rank on another node then connects to 127.x, i.e. to
itself, and the job dies after gloo's 30 s timeout with ``Gloo
connectFullMesh failed ... Connection refused, remote=[127.0.0.1]:PORT``
(or waits for the process group timeout). With ``GLOO_SOCKET_IFNAME=IFACE``
gloo binds to IFACE's address instead (``lookupAddrForIface`` in
gloo/transport/tcp/device.cc).

:func:`set_gloo_socket_ifname` sets it, before the ranks start, to the
interface that holds the address this node sends from to reach
MASTER_ADDR: the network that the rendezvous already has to use, and so the
one the nodes reach each other by. Only gloo reads the variable (NCCL has
its own, ``NCCL_SOCKET_IFNAME``), so setting it is harmless for a job that
uses another backend; the checks of MASTER_ADDR hold for every backend,
since the other nodes connect to MASTER_ADDR:PORT for the rendezvous.
"""
import ipaddress
import os
import socket
from typing import List, MutableMapping, Optional, Union

import psutil

GLOO_SOCKET_IFNAME = 'GLOO_SOCKET_IFNAME'


class NetworkSetupError(RuntimeError):
    """A multi-node job that cannot connect as set up; the message is one
    line that names the fix."""


def _bare(address: str
          ) -> Union[ipaddress.IPv4Address, ipaddress.IPv6Address]:
    # psutil writes IPv6 link-local addresses with their zone ('fe80::1%eth0').
    return ipaddress.ip_address(address.split('%', 1)[0])


def up_interfaces() -> List[str]:
    """Names of this machine's interfaces that are up and hold an IPv4 or
    IPv6 address, loopback last (psutil.net_if_addrs / net_if_stats)."""
    stats = psutil.net_if_stats()
    names = [
        name for name, addrs in psutil.net_if_addrs().items()
        if name in stats and stats[name].isup and any(
            a.family in (socket.AF_INET, socket.AF_INET6) for a in addrs)
    ]
    return sorted(names, key=lambda n: (interface_is_loopback(n), n))


def interface_is_loopback(name: str) -> bool:
    return any(
        a.family in (socket.AF_INET, socket.AF_INET6)
        and _bare(a.address).is_loopback
        for a in psutil.net_if_addrs().get(name, []))


def interface_holding(address: str) -> Optional[str]:
    """The name of the up interface that holds IP ``address``, or None."""
    wanted = _bare(address)
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addrs:
            if (a.family in (socket.AF_INET, socket.AF_INET6)
                    and _bare(a.address) == wanted):
                return name
    return None


def source_address(host: str) -> str:
    """The local IP address this machine sends from to reach ``host``.

    A UDP socket's ``connect`` only asks the kernel for the route (no
    packet is sent); ``getsockname`` then gives the source address it chose.

    Raises:
        NetworkSetupError: ``host`` does not resolve, or no route reaches it.
    """
    try:
        infos = socket.getaddrinfo(host, 1, proto=socket.IPPROTO_UDP)
    except socket.gaierror as e:
        raise NetworkSetupError(
            f'MASTER_ADDR={host} does not resolve on this machine '
            f'({e.strerror}): set MASTER_ADDR to the address of node 0 '
            '(NODE_RANK=0), the same on every node') from None
    problem = None
    for family, type_, proto, _, sockaddr in infos:
        with socket.socket(family, type_, proto) as sock:
            try:
                sock.connect(sockaddr)
            except OSError as e:
                problem = e.strerror
                continue
            return sock.getsockname()[0]
    raise NetworkSetupError(
        f'MASTER_ADDR={host} cannot be reached from this machine ({problem}): '
        'set MASTER_ADDR to the address of node 0 (NODE_RANK=0) on the '
        f'network between the nodes (interfaces here: {_network_interfaces()})')


def _network_interfaces() -> str:
    names = [n for n in up_interfaces() if not interface_is_loopback(n)]
    return ', '.join(names) if names else 'none up besides loopback'


def set_gloo_socket_ifname(master_addr: str, nnodes: int,
                           environ: Optional[MutableMapping[str, str]] = None
                           ) -> Optional[str]:
    """Set ``GLOO_SOCKET_IFNAME`` in ``environ`` (default ``os.environ``,
    which the ranks inherit) for a job of ``nnodes`` > 1 nodes, to the
    interface that reaches ``master_addr``.

    A user's ``GLOO_SOCKET_IFNAME`` is kept (each comma-separated name must
    be an interface of this machine). One node: nothing to choose.

    Returns:
        The line to log (the interface chosen and why), or None when
        nothing was set.

    Raises:
        NetworkSetupError: ``GLOO_SOCKET_IFNAME`` names no interface here;
            or, with ``nnodes`` > 1, ``master_addr`` is a loopback address
            (the other nodes cannot reach it), does not resolve, or no
            route reaches it.
    """
    environ = os.environ if environ is None else environ
    # torch ignores an empty value (and reads 'a,b' as several interfaces).
    user_choice = environ.get(GLOO_SOCKET_IFNAME, '')
    if user_choice:
        unknown = [n for n in user_choice.split(',')
                   if n not in psutil.net_if_addrs()]
        if unknown:
            raise NetworkSetupError(
                f'{GLOO_SOCKET_IFNAME}={user_choice}: no interface '
                f'{unknown[0]!r} on this machine; set it to one of '
                f'{", ".join(up_interfaces())}')
        return None
    if nnodes <= 1:
        return None
    source = source_address(master_addr)
    ifname = interface_holding(source)
    if _bare(source).is_loopback:
        raise NetworkSetupError(
            f'MASTER_ADDR={master_addr} is a loopback address here, but '
            f'NNODES={nnodes}: the other nodes cannot reach it. Set '
            'MASTER_ADDR to the address of node 0 (NODE_RANK=0) on the network '
            f'between the nodes, or {GLOO_SOCKET_IFNAME} to this node\'s '
            f'interface on that network ({_network_interfaces()}; '
            f'{GLOO_SOCKET_IFNAME}={ifname} if all nodes run on this machine)')
    if ifname is None:
        raise NetworkSetupError(
            f'no interface that is up holds {source}, the address this '
            f'machine reaches MASTER_ADDR={master_addr} from: set '
            f'{GLOO_SOCKET_IFNAME} to this node\'s interface on the network '
            f'between the nodes ({_network_interfaces()})')
    environ[GLOO_SOCKET_IFNAME] = ifname
    return (f'{GLOO_SOCKET_IFNAME}={ifname}: gloo uses {ifname} ({source}), '
            f'the interface that reaches MASTER_ADDR={master_addr} '
            f'(NNODES={nnodes}); set {GLOO_SOCKET_IFNAME} to choose another')
