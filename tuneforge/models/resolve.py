"""Any model identifier -> what it names, and how to load it. The CLI, the API (tuneforge.serving.resolve),
deployments, jobs and evaluation all ask here, so one identifier means the same model everywhere.

    models = ModelResolver(settings, sessions, catalog, registry)
    model = models.resolve("dialogsum-summarizer", kinds=LOADABLE, field="--model")   # a CustomRef
    spec = models.worker_spec(model, device="cpu")   # its base with its adapter (a decrypted copy, if encrypted)
    ...                                              # start a worker or an evaluation process with spec
    models.registry.release(spec)                    # remove that copy once the worker has loaded the model

What an identifier names:
- An ARN says it outright (tuneforge.ids.parse_arn): a foundation-model ARN is looked for in the catalog only, a
  custom-model ARN among custom models, a provisioned-model ARN among provisioned models.
- Anything else is tried as a catalog model id or alias, then as a provisioned model's name or id, then as a
  custom model's name or id; the first match wins (the order the Bedrock runtime API has always used).
Only the kinds a caller asks for are looked at: CreateProvisionedModelThroughput's modelId, or a model to
evaluate, names a foundation or custom model (LOADABLE), never a provisioned one. `resolve` refuses a custom
model that is not Active (it has no weights to load yet); `find` only looks up, and returns None for no match.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.catalog.entries import FoundationModel
from tuneforge.catalog.service import Catalog
from tuneforge.db.tables import CustomModelRow, ProvisionedModelRow
from tuneforge.errors import Conflict, NotFound
from tuneforge.ids import ArnType, parse_arn
from tuneforge.inference.spec import WorkerSpec
from tuneforge.models.specs import custom_spec, foundation_spec
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.registry.states import ModelStatus
from tuneforge.settings import Settings


class Kind(str, Enum):
    FOUNDATION = "foundation"
    CUSTOM = "custom"
    PROVISIONED = "provisioned"


ALL = (Kind.FOUNDATION, Kind.CUSTOM, Kind.PROVISIONED)
LOADABLE = (Kind.FOUNDATION, Kind.CUSTOM)  # what a worker loads itself; a provisioned model is served by its workers
_LOOKUP_ORDER = (Kind.FOUNDATION, Kind.PROVISIONED, Kind.CUSTOM)
_BY_ARN = {ArnType.FOUNDATION_MODEL: Kind.FOUNDATION, ArnType.CUSTOM_MODEL: Kind.CUSTOM, ArnType.PROVISIONED_MODEL: Kind.PROVISIONED}
_LISTED_BY = {Kind.FOUNDATION: "`tuneforge models list`", Kind.CUSTOM: "`tuneforge custom-models list`",
              Kind.PROVISIONED: "`tuneforge deployments list`"}


@dataclass(frozen=True)
class FoundationRef:
    """A catalog model, by id, alias or foundation-model ARN."""

    kind: ClassVar[Kind] = Kind.FOUNDATION
    identifier: str  # as given
    arn: str  # of the entry as named: an alias has its own
    entry: FoundationModel  # as named: an alias keeps its own id and body format
    base: FoundationModel  # the entry that holds the weights (an alias's target)


@dataclass(frozen=True)
class CustomRef:
    """A custom model, by name, id or ARN."""

    kind: ClassVar[Kind] = Kind.CUSTOM
    identifier: str
    row: CustomModelRow
    entry: FoundationModel  # its base model as its job named it (an alias keeps its body format)
    base: FoundationModel  # the entry that holds the base weights

    @property
    def arn(self) -> str:
        return self.row.model_arn


@dataclass(frozen=True)
class ProvisionedRef:
    """A provisioned model (deployment), by ARN, id or name: served by its own workers, not loaded by the caller."""

    kind: ClassVar[Kind] = Kind.PROVISIONED
    identifier: str
    row: ProvisionedModelRow

    @property
    def arn(self) -> str:
        return self.row.provisioned_model_arn


ModelRef = FoundationRef | CustomRef | ProvisionedRef


class ModelResolver:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], catalog: Catalog, registry: CustomModelRegistry) -> None:
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog
        self.registry = registry

    def resolve(self, identifier: str, *, kinds: Collection[Kind] = ALL, field: str = "modelId") -> ModelRef:
        """The model `identifier` names among `kinds`; NotFound naming where to look, Conflict for a custom model
        that is not Active. The error names `field`, the caller's name for the identifier."""
        found = self.find(identifier, kinds=kinds)
        if found is None:
            raise NotFound(_unknown(identifier, kinds), field=field)
        if isinstance(found, CustomRef) and found.row.model_status != ModelStatus.ACTIVE:
            raise Conflict(f"custom model {found.row.model_name!r} is {found.row.model_status}, not Active", field=field)
        return found

    def find(self, identifier: str, *, kinds: Collection[Kind] = ALL) -> ModelRef | None:
        arn = parse_arn(identifier)
        if arn is not None:
            kind = _BY_ARN.get(arn.type)
            if kind not in kinds:
                return None
            kinds = (kind,)
        for kind in _LOOKUP_ORDER:
            found = self._find(kind, identifier) if kind in kinds else None
            if found is not None:
                return found
        return None

    def provisioned(self, identifier: str) -> ProvisionedModelRow | None:
        """A provisioned model's record by ARN, id or name (tuneforge.serving.deployments reads its records so too)."""
        arn = parse_arn(identifier)
        if arn is None:
            named = (ProvisionedModelRow.provisioned_model_name == identifier) | (ProvisionedModelRow.provisioned_model_id == identifier)
        elif arn.type is ArnType.PROVISIONED_MODEL:
            named = ProvisionedModelRow.provisioned_model_id == arn.resource_id  # any region or account: the id is ours
        else:
            return None
        with self.sessions() as session:
            return session.scalars(select(ProvisionedModelRow).where(named)).first()

    # ---- loading --------------------------------------------------------------------------------
    def worker_spec(self, model: FoundationRef | CustomRef, *, device: str = "auto", dtype: str = "auto") -> WorkerSpec:
        """How a worker loads the model. An encrypted custom model's spec points at a decrypted copy: pass the
        spec to `registry.release()` once the worker has loaded it."""
        if isinstance(model, CustomRef):
            return custom_spec(self.catalog, self.registry, model.row, device=device, dtype=dtype)
        return foundation_spec(self.catalog, model.base, device=device, dtype=dtype)

    def base_spec(self, model: FoundationRef | CustomRef) -> WorkerSpec:
        """The base model's spec: what a tokenizer is read from (a custom model keeps its base's). Never decrypts."""
        return foundation_spec(self.catalog, model.base)

    # ---- lookups ----------------------------------------------------------------------------------
    def _find(self, kind: Kind, identifier: str) -> ModelRef | None:
        if kind is Kind.PROVISIONED:
            row = self.provisioned(identifier)
            return ProvisionedRef(identifier, row) if row is not None else None
        try:
            if kind is Kind.FOUNDATION:
                entry = self.catalog.get(identifier)
                return FoundationRef(identifier, entry.arn(self.settings.region), entry, self.catalog.resolve(entry.model_id))
            custom = self.registry.get(identifier)
        except NotFound:
            return None
        # outside the try: a custom model whose base left the catalog is an error worth seeing, not "no such model"
        return CustomRef(identifier, custom, self.catalog.get(custom.base_model_id), self.catalog.resolve(custom.base_model_id))


def _unknown(identifier: str, kinds: Collection[Kind]) -> str:
    asked = [kind for kind in Kind if kind in kinds]
    nouns = [kind.value for kind in asked]
    lists = [_LISTED_BY[kind] for kind in asked]
    return f"no {_series(nouns, 'or')} model {identifier!r}: see {_series(lists, 'and')}"


def _series(words: list[str], conjunction: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"
