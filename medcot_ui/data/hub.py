"""Hub datasets: load one with ``datasets``, after a quick check that the Hub answers at all."""

from __future__ import annotations

from typing import Any

from medcot_ui.errors import DataError


class HubUnreachable(DataError):
    """The Hub could not be reached (no network); the demo data and uploads still work."""


HUB_TIMEOUT_S = 5.0


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Can the Hub endpoint be reached at all? Answers within ``timeout`` even when DNS hangs.

    Without this check ``datasets`` retries for about half a minute before giving up on a machine with no
    network. Any HTTP answer counts as reachable; urllib honours the proxy settings of the environment.
    """
    import threading
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    answer: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(constants.ENDPOINT, timeout=timeout):
                answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)
        except (OSError, ValueError):
            answer.append(False)

    # A daemon thread: a resolver that hangs is abandoned, and never holds up the process's exit.
    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _hub_offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _unreachable(data: Any, why: str) -> HubUnreachable:
    return HubUnreachable(
        f"The Hugging Face Hub is unreachable from this machine ({why}), so '{data.dataset_id}' cannot be "
        "loaded. Use the bundled demo data or upload a file instead.")


def load_hub(data: Any) -> tuple[list[dict[str, Any]], str, str]:
    """(records, source label, content id) of the configured Hub dataset; no network fails within seconds."""
    import datasets

    # In offline mode datasets answers from its local cache (quickly); otherwise check the network first.
    offline = _hub_offline_mode()
    if not offline and not hub_reachable():
        raise _unreachable(data, "no network connection")
    try:
        ds = datasets.load_dataset(data.dataset_id, data.dataset_config or None, split=data.split)
    except datasets.exceptions.DatasetNotFoundError:
        if offline:
            raise _unreachable(data, "HF_HUB_OFFLINE is set and the dataset is not in the local cache") from None
        raise DataError(f"dataset_id: '{data.dataset_id}' was not found on the Hub (check the id; a private or "
                        "gated dataset needs HF_TOKEN)") from None
    except (ConnectionError, OSError) as exc:
        why = "HF_HUB_OFFLINE is set and the dataset is not in the local cache" if offline else type(exc).__name__
        raise _unreachable(data, why) from None
    except ValueError as exc:
        raise DataError(f"split: {exc}") from None
    revision = getattr(ds.info, "version", None)
    return ds.to_list(), f"{data.dataset_id}/{data.dataset_config} ({data.split})", \
        f"fingerprint:{ds._fingerprint}" + (f" version:{revision}" if revision else "")
