"""The RAG store's settings: which Qdrant, which collection, how documents
are split and which embedder makes their vectors.

In order, lowest first: the defaults here, a YAML/JSON file (`--config`, else
/etc/sovereign/rag.yaml when it exists: the rag role writes it on a node),
then the environment (`SOVEREIGN_RAG_ENGINE`, `SOVEREIGN_RAG_URL`,
`SOVEREIGN_RAG_API_KEY`, `SOVEREIGN_RAG_CHUNKING__SIZE`, ...).

- `engine: server` (production): the Qdrant server at `url`, with `api_key`
  (a secret, from the vault; never printed);
- `engine: embedded` (the lab, which cannot fetch the server's binary):
  Qdrant's embedded engine (qdrant-client's local mode) in the directory
  `path`, by default `<state>/rag/qdrant`. The same code runs on both; the
  embedded engine serves one process at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from sovereign.service.settings import Section, ServiceSettings, build_settings, service_config

SERVICE = "rag"
DEFAULT_CONFIG = Path("/etc/sovereign/rag.yaml")


class ChunkingSettings(Section):
    """How a document is split: windows of `size` characters, the next one
    starting `overlap` characters before the last one ended (cut at a
    paragraph, a line, a sentence or a word where one is near)."""

    size: int = Field(800, ge=100, le=20000, description="characters per chunk, at most")
    overlap: int = Field(120, ge=0, description="characters shared by neighbouring chunks")

    @model_validator(mode="after")
    def _overlap_below_half(self) -> ChunkingSettings:
        if self.overlap * 2 >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be below half of chunking.size "
                             f"({self.size})")
        return self


class EmbeddingSettings(Section):
    """The embedder, as the router's `embedding` section: all-MiniLM-L6-v2
    (`minilm`, found in `model_dir`, the installed package or the download
    cache) or hashed character 3-grams (`hashed`: lexical only, for tests that
    need speed)."""

    backend: Literal["minilm", "hashed"] = "minilm"
    model_dir: Path | None = None


class RagSettings(ServiceSettings):
    """Where the RAG store's chunks live and how they are made."""

    service: ClassVar[str] = SERVICE
    model_config = service_config(SERVICE)

    engine: Literal["server", "embedded"] = "embedded"
    url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, description="bound of each call to the Qdrant server")
    path: Path | None = None
    collection: str = Field("knowledge", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    chunking: ChunkingSettings = ChunkingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()

    @model_validator(mode="after")
    def _url_for_server(self) -> RagSettings:
        if self.engine == "server" and not self.url:
            raise ValueError("engine is server but url is not set (the Qdrant server's http(s) URL)")
        return self

    def engine_path(self) -> Path:
        """The embedded engine's directory (created): `path`, else <state>/rag/qdrant."""
        path = self.path or self.state() / "qdrant"
        path.mkdir(parents=True, exist_ok=True)
        return path


def rag_settings(config: Path | None = None) -> RagSettings:
    """The settings from `config` (else /etc/sovereign/rag.yaml if it exists) and the environment."""
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    return build_settings(RagSettings, config_file=config)
