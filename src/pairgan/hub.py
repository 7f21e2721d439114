"""Models on the Hugging Face Hub.

``hf://OWNER/NAME[@REVISION]`` names a model repository (and a branch, tag or commit of it). It is
resolved to a local folder by ``huggingface_hub.snapshot_download`` — the Hub's own cache under
``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and ``HF_ENDPOINT`` all apply as for any
other Hub library — downloading only what inference reads (:data:`LOAD_PATTERNS`): the config, the
weights as safetensors and the JSON beside them. A pickle (a training ``state.pt``, a ``.bin``/``.pt``
file) is never downloaded, so loading a model from the Hub never unpickles anything from it.

:func:`upload_folder` pushes a packaged model folder (``pairgan package``) to a repository.

``huggingface_hub`` is the optional extra ``hub``; it is imported inside the functions that need it,
so ``import pairgan`` and every command that does not touch the Hub work without it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairgan import __version__
from pairgan.errors import CheckpointError, ConfigError, HubError

__all__ = ["HUB_PREFIX", "LOAD_PATTERNS", "HubRef", "hub_module", "in_hub_cache", "is_hub_ref", "parse_hub_ref",
           "parse_repo_id", "snapshot", "upload_folder"]

log = logging.getLogger(__name__)

HUB_PREFIX = "hf://"

#: What loading a model downloads from its repository: the config, the weights (safetensors only)
#: and the JSON files beside them (package.json, extra_state.json, input_profile.json, cards).
LOAD_PATTERNS: tuple[str, ...] = ("config.yaml", "*.safetensors", "*.json")

# The Hub's rules for a repository id: OWNER/NAME, letters, digits, '-', '_', '.', at most 96 each.
_REPO_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_REVISION_RE = re.compile(r"[A-Za-z0-9._/-]{1,255}")


@dataclass(frozen=True)
class HubRef:
    """A model repository on the Hub and, optionally, a revision (branch, tag or commit)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return HUB_PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "")


def is_hub_ref(path: Any) -> bool:
    """``path`` names a Hub model (``hf://OWNER/NAME[@REVISION]``). A ``pathlib.Path`` made from such
    a string has lost a slash (``hf:/OWNER/NAME``) and is recognised too."""
    if isinstance(path, str):
        return path.startswith(HUB_PREFIX)
    if isinstance(path, os.PathLike):
        return os.fspath(path).startswith("hf:/")
    return False


def parse_repo_id(text: str, *, what: str = "repository") -> str:
    """``OWNER/NAME`` checked against the Hub's naming rules (a one-line :class:`ConfigError` naming
    the value otherwise)."""
    if not _REPO_RE.fullmatch(text or "") or ".." in text or "--" in text:
        raise ConfigError(f"{what} {text!r}: expected OWNER/NAME (letters, digits, '-', '_', '.'; at most 96 "
                          "characters each, no '--' or '..')")
    return text


def parse_hub_ref(text: str | os.PathLike) -> HubRef:
    """``hf://OWNER/NAME[@REVISION]`` -> :class:`HubRef`; a one-line :class:`ConfigError` for
    anything else."""
    raw = os.fspath(text)
    body = raw[len(HUB_PREFIX):] if raw.startswith(HUB_PREFIX) else raw[len("hf:/"):] if raw.startswith("hf:/") else None
    if body is None:
        raise ConfigError(f"{raw!r}: not a Hub model; expected hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    repo, sep, revision = body.partition("@")
    parse_repo_id(repo.rstrip("/"), what=f"{raw!r}: repository")
    if sep and not _REVISION_RE.fullmatch(revision):
        raise ConfigError(f"{raw!r}: revision {revision!r}: expected a branch, tag or commit after '@'")
    return HubRef(repo.rstrip("/"), revision or None)


def hub_module() -> Any:
    """The ``huggingface_hub`` module, or a one-line :class:`ConfigError` naming the extra."""
    try:
        import huggingface_hub  # optional extra: only Hub references and `pairgan push` need it
    except ImportError:
        raise ConfigError("huggingface_hub is not installed: Hub models (hf://) and pairgan push need it "
                          "(pip install 'pairgan[hub]')") from None
    return huggingface_hub


def in_hub_cache(path: str | os.PathLike) -> bool:
    """``path`` lies inside the Hugging Face cache (a downloaded snapshot): nothing of pairgan's own
    (compiled graphs) is written there. False when huggingface_hub was never imported: then no
    snapshot was resolved in this process."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return False
    cache = Path(constants.HF_HUB_CACHE).expanduser().resolve()
    try:
        Path(path).resolve().relative_to(cache)
    except ValueError:
        return False
    return True


def _describe_failure(ref: HubRef, exc: BaseException) -> str:
    """Why resolving ``ref`` failed, in words the user can act on."""
    from huggingface_hub import constants, errors  # optional extra: snapshot() imported it already

    cache = constants.HF_HUB_CACHE
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{ref}: revision {ref.revision!r} not found in {ref.repo_id}"
    if isinstance(exc, errors.GatedRepoError):
        return f"{ref}: a gated repository: accept its conditions on the Hub and log in (hf auth login, or HF_TOKEN)"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return (f"{ref}: no model repository {ref.repo_id} on {constants.ENDPOINT} (or it is private: log in with "
                "hf auth login, or set HF_TOKEN)")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        if constants.is_offline_mode():
            return (f"{ref}: not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set: download it once "
                    "with the Hub reachable")
        reason = str(exc.__cause__ or exc).splitlines()[0][:200]
        return f"{ref}: the Hub could not be reached and the model is not in the Hugging Face cache ({cache}): {reason}"
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return f"{ref}: the Hub answered HTTP {status}: {str(exc).splitlines()[0][:200]}"
    return f"{ref}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def snapshot(ref: str | os.PathLike | HubRef) -> Path:
    """The local folder holding Hub model ``ref``: downloaded into (or, offline or unchanged, read from)
    the Hugging Face cache, with only :data:`LOAD_PATTERNS`. Raises :class:`CheckpointError` in one
    line when the repository, the revision or (offline) the cached copy is missing, or when the
    repository holds no pairgan model."""
    ref = ref if isinstance(ref, HubRef) else parse_hub_ref(ref)
    hf = hub_module()
    from huggingface_hub import errors  # optional extra, present: hub_module() checked

    try:
        folder = Path(hf.snapshot_download(ref.repo_id, revision=ref.revision, repo_type="model",
                                           allow_patterns=list(LOAD_PATTERNS), library_name="pairgan",
                                           library_version=__version__))
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise CheckpointError(_describe_failure(ref, exc)) from None
    if not (folder / "config.yaml").is_file() or not any(folder.glob("*.safetensors")):
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        raise CheckpointError(f"{ref}: not a pairgan model (expected config.yaml and *.safetensors at the "
                              f"repository's root, as pairgan package writes; found {', '.join(found[:8]) or 'nothing'})")
    log.info("%s: %s", ref, folder)
    return folder


def upload_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                  message: str = "Upload pairgan model", token: str | None = None) -> str:
    """Create model repository ``repo_id`` when it does not exist (``private`` then) and upload every
    file of ``folder`` in one commit (on branch ``revision``, created from main when missing; default
    the main branch). Returns the
    commit's URL. Errors (no token, no permission, a network failure) are one-line
    :class:`HubError`."""
    hf = hub_module()
    from huggingface_hub import errors  # optional extra, present: hub_module() checked

    parse_repo_id(repo_id)
    api = hf.HfApi(token=token, library_name="pairgan", library_version=__version__)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, repo_type="model", branch=revision, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                   revision=revision, commit_message=message)
    except errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        hint = " (log in with hf auth login, or set HF_TOKEN, with write access)" if status in (401, 403) else ""
        raise HubError(f"{repo_id}: the Hub refused the upload: HTTP {status}{hint}: "
                       f"{str(exc).splitlines()[0][:200]}") from None
    except (OSError, ValueError) as exc:
        raise HubError(f"{repo_id}: upload failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    return str(getattr(commit, "commit_url", None) or commit)
