"""Hosts made of Linux network namespaces on one bridge, made and removed by the tests.

Each host is a namespace with its own loopback and one veth whose other end sits on a
bridge in the test's namespace; the bridge holds one more address, from which the test
itself looks at the database (it never serves anything). Nothing a host runs can reach
another host's 127.0.0.1, so every connection between parts crosses the bridge, as it
would between machines. Taking a host away kills its processes and downs its link;
cutting a route drops a host's packets to one address (a blackhole route), which
stalls the connections over it without closing them, as a broken network does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# What a host needs: the `ip` tool and the right to make namespaces (root, or
# CAP_NET_ADMIN and CAP_SYS_ADMIN).
IP = "ip"


class NamespacesUnavailable(Exception):
    """This machine (or container) does not let the test make network namespaces."""


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    namespace: str
    link: str
    addresses: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, args: list[str]) -> list[str]:
        return [IP, "netns", "exec", self.namespace, *args]

    def run(self, args: list[str], env: dict[str, str], **options: object) -> str:
        done = subprocess.run(
            self.command(args), env=env, check=True, capture_output=True, text=True, **options
        )
        return done.stdout

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """A process on this host, in a session of its own (killed with everything it
        started), its output in `log`."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.command(args),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def kill(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.processes.clear()

    def take_away(self) -> None:
        """As if the machine lost power: its link goes down, then its processes die
        (so that not even a close or a reset reaches the others)."""
        _ip("-n", self.namespace, "link", "set", self.link, "down")
        self.kill()

    def cut_route(self, address: str) -> None:
        _ip("-n", self.namespace, "route", "add", "blackhole", f"{address}/32")

    def restore_route(self, address: str) -> None:
        _ip("-n", self.namespace, "route", "del", "blackhole", f"{address}/32")


class Network:
    """A bridge and the hosts on it, under a random tag so that runs never collide."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.bridge = f"atb{self.tag}"
        self.subnet = _free_subnet()
        self._next = 2
        self.observer = str(self.subnet.network_address + 1)
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            reason = getattr(error, "stderr", None) or str(error)
            raise NamespacesUnavailable(f"cannot make a bridge: {reason.strip()}") from None
        _ip("addr", "add", f"{self.observer}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts.values():
            host.kill()
        for host in self.hosts.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)

    def add_host(self, name: str, addresses: int = 1) -> Host:
        index = len(self.hosts)
        namespace = f"aitasks-{self.tag}-{name}"
        outside, inside = f"at{self.tag}o{index}", f"at{self.tag}i{index}"
        _ip("netns", "add", namespace)
        host = Host(name, namespace, inside, [])
        self.hosts[name] = host
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        for _ in range(addresses):
            address = str(self.subnet.network_address + self._next)
            self._next += 1
            _ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", inside)
            host.addresses.append(address)
        _ip("-n", namespace, "link", "set", inside, "up")
        return host


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200-249.x that no interface here uses."""
    used = subprocess.run([IP, "-o", "-4", "addr"], capture_output=True, text=True).stdout
    while True:
        subnet = ipaddress.ip_network(
            f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"
        )
        if str(subnet.network_address).rsplit(".", 1)[0] + "." not in used:
            return subnet


@contextlib.contextmanager
def network() -> Iterator[Network]:
    with Network() as made:
        yield made
