"""URN -> contact resolution, and which channel reaches an identity."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, SQLModel, select

from conversations.messages import urn_scheme
from store import fast
from store.models import Contact, Identity
from store.types import utcnow

_identities = Identity.__table__  # type: ignore[attr-defined]
_contacts = Contact.__table__  # type: ignore[attr-defined]
_IDENTITY_COLUMNS = [c.name for c in _identities.c]
_CONTACT_COLUMNS = [c.name for c in _contacts.c]
# The columns of an identity and its contact in one row (contact columns prefixed ``contact__``):
# one Core query for both (the ORM's joined load costs several times the query itself).
IDENTITY_AND_CONTACT = (*_identities.c, *(c.label(f"contact__{c.name}") for c in _contacts.c))
_BY_URN = core_select(*IDENTITY_AND_CONTACT).join(
    _contacts, _contacts.c.id == _identities.c.contact_id).where(_identities.c.urn == bindparam("urn"))

# The channel that sends to each URN scheme.
CHANNEL_FOR_SCHEME = {"tel": "sms", "mailto": "email", "telegram": "telegram"}


def find_identity(session: Session, urn: str) -> Identity | None:
    return session.exec(select(Identity).where(Identity.urn == urn)).first()


def resolve(session: Session, urn: str, language: str | None = None,
            display_name: str | None = None) -> tuple[Contact, Identity]:
    """The contact and identity for ``urn``, created on first contact."""
    contact, identity, _ = resolve_new(session, urn, language, display_name)
    return contact, identity


def resolve_new(session: Session, urn: str, language: str | None = None,
                display_name: str | None = None) -> tuple[Contact, Identity, bool]:
    """Like ``resolve``, and whether the identity was created now (one query when it exists)."""
    return resolved(session, fast.query(session, _BY_URN, {"urn": urn}).mapping(), urn, language, display_name)


def resolved(session: Session, found: Mapping[str, Any] | None, urn: str, language: str | None = None,
             display_name: str | None = None) -> tuple[Contact, Identity, bool]:
    """:func:`resolve_new` from a row already read with the :data:`IDENTITY_AND_CONTACT` columns
    (None, or an identity id of None: no identity has ``urn``, so it is created)."""
    if found is not None and found["id"] is not None:
        identity = fast.loaded(session, Identity, {name: found[name] for name in _IDENTITY_COLUMNS})
        contact = fast.loaded(session, Contact, {name: found[f"contact__{name}"] for name in _CONTACT_COLUMNS})
        return contact, identity, False
    contact, identity = fast.new_chain(session, new_identity_rows(urn, language, display_name))
    return contact, identity, True  # type: ignore[return-value]


def new_identity_rows(urn: str, language: str | None = None, display_name: str | None = None
                      ) -> list[tuple[type[SQLModel], dict[str, Any], dict[str, int]]]:
    """The rows of a new contact and its identity for ``urn``, for :func:`store.fast.new_chain`
    (the identity points at row 0, the contact)."""
    now = utcnow()
    return [(Contact, dict(language=language, display_name=display_name, created_at=now), {}),
            (Identity, dict(urn=urn, scheme=urn_scheme(urn), created_at=now, extra={}), {"contact_id": 0})]


def link_identity(session: Session, contact: Contact, urn: str) -> Identity:
    """Attach ``urn`` to ``contact`` (e.g. a phone number shared in Telegram).

    When the URN already belongs to another contact, that contact's identities, conversations
    and complaints are merged into ``contact`` so one person has one history.
    """
    from store.models import Complaint, Conversation, Message  # local: only needed for merges

    identity = find_identity(session, urn)
    if identity is None:
        identity = Identity(contact_id=contact.id, urn=urn, scheme=urn_scheme(urn))  # type: ignore[arg-type]
        session.add(identity)
        session.flush()
        return identity
    if identity.contact_id == contact.id:
        return identity
    other_id = identity.contact_id
    for model in (Identity, Conversation, Complaint, Message):
        for row in session.exec(select(model).where(model.contact_id == other_id)).all():  # type: ignore[attr-defined]
            row.contact_id = contact.id
            session.add(row)
    session.flush()
    return identity


def reachable_identities(session: Session, contact_id: int) -> list[Identity]:
    rows = session.exec(select(Identity).where(Identity.contact_id == contact_id,
                                               Identity.unreachable == False)  # noqa: E712
                        .order_by(Identity.id)).all()
    return [row for row in rows if row.scheme in CHANNEL_FOR_SCHEME]
