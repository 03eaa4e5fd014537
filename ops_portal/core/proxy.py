"""Who the client is when proxies stand in between: forwarding headers count only from TRUSTED_PROXIES.

A peer that is not a configured proxy speaks for itself: its X-Forwarded-For, X-Forwarded-Proto,
X-Forwarded-Host and Forwarded headers are dropped before any other code sees them. From a trusted
proxy the X-Forwarded-For chain is read from the right: the first address that is not itself a
trusted proxy is the client (left-most entries were written by the client and prove nothing). Every
address is parsed with `ipaddress`; a malformed one ends the walk at the last trusted hop, so a bad
header can neither name a client nor fail the request.
"""
import ipaddress

from django.conf import settings

FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                      "HTTP_X_FORWARDED_PORT", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
PEER_KEY = "opsportal.peer_address"  # request.META key of the socket peer, before resolution
# request.META flag: an untrusted peer sent forwarding headers, so it relays for someone else (a
# proxy missing from TRUSTED_PROXIES): its loopback address says nothing about the real client.
RELAYED_KEY = "opsportal.relayed_by_untrusted"
MAX_HOPS = 20  # a longer chain is cut: nobody runs twenty proxies, and it bounds the walk


def parse_networks(values, *, setting="TRUSTED_PROXIES"):
    """IP addresses and CIDR ranges as ip_network objects; ValueError names a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {value!r} is not an IP address or CIDR range") from None
    return networks


def clean_ip(value):
    """The address in canonical form (IPv4-mapped IPv6 as IPv4, no zone), or None if it is not one."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if not value or len(value) > 45 or "%" in value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_trusted(address):
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def resolve(meta):
    """(client address or None, peer address or None) for a request's META, headers unmodified."""
    peer = clean_ip(meta.get("REMOTE_ADDR"))
    if not is_trusted(peer):
        return peer, peer
    client = peer
    hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")][-MAX_HOPS:]
    for raw in reversed(hops):
        address = clean_ip(raw)
        if address is None:
            break  # malformed: nothing left of it can be believed; keep the last trusted hop
        client = address
        if not is_trusted(address):
            break
    return client, peer


def is_local(request):
    """The client is on this machine: a loopback address that relays for nobody."""
    address = client_address(request)
    return (address is not None and ipaddress.ip_address(address).is_loopback
            and not request.META.get(RELAYED_KEY))


class ProxyHeadersMiddleware:
    """Resolve the client address once per request and drop forwarding headers nobody vouches for.

    REMOTE_ADDR becomes the client's address (what the throttles, the audit log and the loopback
    checks of /metrics and /readyz read); the socket peer stays under META[PEER_KEY].
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        apply(request.META)
        return self.get_response(request)


def apply(meta):
    if PEER_KEY in meta:
        return
    client, peer = resolve(meta)
    if not is_trusted(peer):
        dropped = [meta.pop(header) for header in FORWARDING_HEADERS if header in meta]
        meta[RELAYED_KEY] = bool(dropped)
    meta[PEER_KEY] = peer
    meta["REMOTE_ADDR"] = client or ""


def client_address(request):
    """The validated client address of a request (None when unknown)."""
    meta = request.META
    apply(meta)
    return clean_ip(meta.get("REMOTE_ADDR"))
