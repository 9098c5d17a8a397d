"""Finding what a reading command asks for: the store opened for reading (read-only where it
cannot be written) and a run named by id, unique id prefix or unique name. Shared by ``runs``,
``show`` and ``export``, without registering any command."""

from __future__ import annotations

from greentrain.errors import StoreError
from greentrain.store import Store

STORE_HELP = "Store file or postgresql:// URL (default $GREENTRAIN_STORE)."


def open_to_read(store: str | None) -> Store:
    """The store for a command that only reads: writable where it can be (a dead wrapper's run
    is then recorded as interrupted), else read-only -- a store on read-only media, or one whose
    schema version cannot be read, is still listed and shown, never refused."""
    try:
        return Store(store, create=False)
    except StoreError:
        return Store(store, read_only=True, create=False)


def resolve_run(st: Store, key: str) -> str:
    """The full id of the run or group ``key`` names: an id, a unique id prefix, or the unique
    name of a run (``greentrain run --name``). StoreError when none or several match."""
    try:
        return st.resolve_id(key)
    except StoreError as err:
        named = st.list_runs(name=key.strip()) if key.strip() else []
        if len(named) == 1:
            return named[0]["id"]
        if len(named) > 1:
            ids = ", ".join(str(r.get("id")) for r in named[:10])
            raise StoreError(
                f"{len(named)} runs are named {key!r} ({ids}); give one's id instead"
            ) from None
        raise StoreError(f"{err} (no run is named {key!r} either)") from None
