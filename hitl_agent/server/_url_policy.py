"""Where the local server may POST callbacks: the SSRF policy, at create and at delivery.

A ``callback_url`` is chosen by whoever holds an API key, and the server POSTs to it: without a
policy any key holder could make the server reach cloud metadata (``169.254.169.254``), the
private network, or a service bound to a non-canonical spelling of an address. Refused:

* anything but ``http``/``https``; userinfo (``user:pw@``, which httpx would send as Basic
  auth); whitespace or control characters (CR/LF) anywhere; over-long URLs;
* numeric hosts not written as canonical dotted decimal (``2130706433``, ``0x7f000001``,
  ``0177.0.0.1``, ``127.1``): resolvers accept them and they only serve to dodge checks;
* cloud metadata names and addresses, link-local, unspecified, multicast and reserved
  addresses, IPv4-mapped/NAT64 forms of any of them;
* private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) unless the server was
  started with ``allow_private_callbacks=True`` (``hitl-agent serve --allow-private-callbacks``).

Loopback (``127.0.0.0/8``, ``::1``, ``localhost``) is allowed: the local server exists for
local development. At delivery the host is resolved, every address is checked, and the
connection goes to the address that was checked (see ``_callback_transport``), so a name that
re-resolves to a forbidden address between check and connect (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._limits import MAX_CALLBACK_URL_LENGTH

__all__ = ["CallbackPolicy", "RefusedCallback"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f]")


class RefusedCallback(ValueError):
    """A callback target the policy refuses; the message says why (never the URL itself)."""


def _embedded_v4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class CallbackPolicy:
    """The callback target rules; ``allow_private`` opens the private ranges (never metadata)."""

    allow_private: bool = False

    def address_problem(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be called back, or None when it may."""
        address = _embedded_v4(address)
        if address in _METADATA_ADDRESSES:
            return "it is a cloud metadata address"
        if address.is_loopback:
            return None
        if address.is_link_local:
            return "it is a link-local address"
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return "it is not a unicast address"
        if address.is_private or address in _CGNAT:
            if self.allow_private:
                return None
            return (
                "it is a private-network address (start the server with "
                "allow_private_callbacks=True / --allow-private-callbacks to allow it)"
            )
        return None

    def check_url(self, url: str) -> tuple[str, int]:
        """Refuse a URL by its text alone (no DNS); return its ``(host, port)``.

        Raises:
            RefusedCallback: naming the problem.
        """
        if len(url) > MAX_CALLBACK_URL_LENGTH:
            raise RefusedCallback(f"it is longer than {MAX_CALLBACK_URL_LENGTH} characters")
        if _BAD_CHARS.search(url) or any(char.isspace() for char in url):
            raise RefusedCallback("it contains whitespace or control characters (CR/LF)")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise RefusedCallback("it is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise RefusedCallback("it is not an absolute http(s) URL")
        if "@" in parts.netloc:
            raise RefusedCallback("it carries userinfo (user:password@); put no credentials in it")
        host = parts.hostname.rstrip(".")
        if port is None:
            port = 443 if parts.scheme.lower() == "https" else 80
        if host in _METADATA_HOSTS:
            raise RefusedCallback("it names a cloud metadata service")
        address = _literal_address(host)
        if address is not None:
            problem = self.address_problem(address)
            if problem is not None:
                raise RefusedCallback(problem)
        return host, port

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, all checked; the first is the one to connect to.

        Raises:
            RefusedCallback: a refused address (or nothing) among the answers.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise RefusedCallback("its host name does not resolve") from None
        addresses: list[str] = []
        for info in infos:
            text = str(info[4][0]).split("%", 1)[0]
            problem = self.address_problem(ipaddress.ip_address(text))
            if problem is not None:
                raise RefusedCallback(f"its host name resolves to an address where {problem}")
            if text not in addresses:
                addresses.append(text)
        if not addresses:
            raise RefusedCallback("its host name does not resolve")
        return addresses


def _literal_address(host: str) -> IPAddress | None:
    """The address a numeric host means, refusing spellings that are not canonical."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # dotted decimal or IPv6
    except ValueError:
        pass
    try:
        packed = socket.inet_aton(host)  # what a resolver would accept: 0x7f.1, 2130706433 ...
    except OSError:
        return None
    canonical = socket.inet_ntoa(packed)
    raise RefusedCallback(f"its host is a non-canonical spelling of {canonical}; write it as such")
