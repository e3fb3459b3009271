"""Tags on tuneforge's resources, by ARN (Bedrock's TagResource, UntagResource, ListTagsForResource).

Taggable today: custom models and model customization jobs (tags given at creation, `jobTags` and
`customModelTags`, are stored here by the job and registry services) and provisioned models. Other resources join
by adding a resolver for their ARN type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import ResourceTagRow
from tuneforge.errors import InvalidInput, NotFound, TooManyTags
from tuneforge.ids import ArnType, parse_arn

MAX_TAGS = 200
_TAG_TEXT = re.compile(r"[a-zA-Z0-9\s._:/=+@-]*")  # botocore's TagKey/TagValue pattern


def check_tags(tags: Iterable[tuple[str, str]], field: str = "tags") -> list[tuple[str, str]]:
    """The tags, validated as Bedrock does (key 1-128, value 0-256 characters, letters, digits, spaces and ._:/=+@-)."""
    checked = list(tags)
    for i, (key, value) in enumerate(checked):
        if not 1 <= len(key) <= 128 or not _TAG_TEXT.fullmatch(key):
            raise InvalidInput(f"{field}[{i}].key must be 1-128 letters, digits, spaces or ._:/=+@-, got {key!r}", field=f"{field}[{i}].key")
        if len(value) > 256 or not _TAG_TEXT.fullmatch(value):
            raise InvalidInput(f"{field}[{i}].value must be at most 256 letters, digits, spaces or ._:/=+@-, got {value!r}", field=f"{field}[{i}].value")
    if len(checked) > MAX_TAGS:
        raise TooManyTags(f"{field}: at most {MAX_TAGS} tags per resource, got {len(checked)}", field=field)
    return checked


def store_tags(session: Session, resource_arn: str, tags: Iterable[tuple[str, str]]) -> None:
    """Add or overwrite tags inside the caller's transaction (for services that create the resource)."""
    for key, value in tags:
        session.merge(ResourceTagRow(resource_arn=resource_arn, key=key, value=value))


def drop_tags(session: Session, resource_arn: str) -> None:
    session.execute(delete(ResourceTagRow).where(ResourceTagRow.resource_arn == resource_arn))


class ResourceTags:
    """`resolvers` map an ARN type (ArnType.CUSTOM_MODEL) to a function returning the resource's canonical ARN,
    raising NotFound when it does not exist."""

    def __init__(self, sessions: sessionmaker[Session], resolvers: dict[ArnType, Callable[[str], str]]) -> None:
        self.sessions = sessions
        self.resolvers = resolvers

    def _resource(self, arn: str) -> str:
        parsed = parse_arn(arn)
        if parsed is not None and parsed.type in self.resolvers:
            return self.resolvers[parsed.type](arn)
        kinds = ", ".join(t.value for t in self.resolvers)
        raise NotFound(f"{arn!r} is not a taggable tuneforge resource ({kinds})", field="resourceARN")

    def list(self, arn: str) -> list[tuple[str, str]]:
        arn = self._resource(arn)
        with self.sessions() as session:
            rows = session.scalars(select(ResourceTagRow).where(ResourceTagRow.resource_arn == arn).order_by(ResourceTagRow.key)).all()
        return [(r.key, r.value) for r in rows]

    def tag(self, arn: str, tags: Iterable[tuple[str, str]]) -> None:
        arn = self._resource(arn)
        tags = check_tags(tags)
        with session_scope(self.sessions) as session:
            existing = set(session.scalars(select(ResourceTagRow.key).where(ResourceTagRow.resource_arn == arn)))
            total = len(existing | {k for k, _ in tags})
            if total > MAX_TAGS:
                raise TooManyTags(f"{arn} would have {total} tags; at most {MAX_TAGS}: untag some first", field="tags")
            store_tags(session, arn, tags)

    def untag(self, arn: str, keys: Iterable[str]) -> None:
        arn = self._resource(arn)
        keys = list(keys)
        with session_scope(self.sessions) as session:
            session.execute(delete(ResourceTagRow).where(ResourceTagRow.resource_arn == arn, ResourceTagRow.key.in_(keys)))

