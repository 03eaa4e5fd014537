"""Who is acting, from where: passed explicitly to services, tasks and the audit log."""
import uuid
from dataclasses import asdict, dataclass, field

from django.contrib.auth import get_user_model

from ops_portal.accounts.permissions import Authority
from ops_portal.core import proxy
from ops_portal.core.choices import Source


@dataclass(frozen=True)
class Actor:
    """The acting user (or none for the system) with the request context of the change."""

    user_id: int | None
    username: str
    source: str = Source.SYSTEM
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_address: str | None = None

    @classmethod
    def from_request(cls, request, *, source=None):
        user = getattr(request, "user", None)
        user = user if user is not None and user.is_authenticated else None
        if source is None:
            source = Source.API if getattr(request, "path", "").startswith("/api/") else Source.WEB
        return cls(
            user_id=user.pk if user else None,
            username=user.get_username() if user else "",
            source=source,
            request_id=getattr(request, "request_id", None) or uuid.uuid4().hex,
            client_address=client_address(request),
        )

    @classmethod
    def for_user(cls, user, *, source, request_id=None):
        return cls(
            user_id=user.pk if user else None,
            username=user.get_username() if user else "",
            source=source,
            request_id=request_id or uuid.uuid4().hex,
        )

    @classmethod
    def system(cls, source=Source.SYSTEM, request_id=None):
        return cls(user_id=None, username="", source=source, request_id=request_id or uuid.uuid4().hex)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def derive(self, *, source):
        """The same actor acting through another channel (a worker running the user's job)."""
        return Actor(self.user_id, self.username, source, self.request_id, self.client_address)

    @property
    def is_system(self):
        """The portal itself acting (its periodic work), not a person: no user and no user's name.
        (A worker acting for a person whose account is gone has no user but keeps their name.)"""
        return self.user_id is None and not self.username

    @property
    def user(self):
        if self.user_id is None:
            return None
        cached = self.__dict__.get("_user")
        if cached is None:
            cached = get_user_model().objects.get(pk=self.user_id)
            object.__setattr__(self, "_user", cached)
        return cached


    @property
    def authority(self):
        """The actor's rights, frozen at first use: services ask before their first write, so a
        change is judged by the rights held before it, never by rights it creates."""
        cached = self.__dict__.get("_authority")
        if cached is None:
            cached = Authority(self.user)
            object.__setattr__(self, "_authority", cached)
        return cached


def client_address(request):
    """The client's validated address (forwarding headers count only from TRUSTED_PROXIES)."""
    return proxy.client_address(request)
