"""The narrow site-data reader of the Flower processes: decrypts one site's stored split.

A SuperNode's ClientApp reads only the paths its own `--node-config` names, with the data key the
supervisor put in that SuperNode's environment (SYNTHGATE_DATA_KEY). It uses SynthGate's at-rest
format (`generation.crypto`), which reads the key from Django settings, so this module configures
a minimal settings object holding nothing but that key: no database, no apps, no models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_KEY_ENV = "SYNTHGATE_DATA_KEY"


def _ensure_key_settings() -> None:
    from django.conf import settings

    if not settings.configured:
        key = os.environ.get(DATA_KEY_ENV)
        if not key:
            raise RuntimeError(f"{DATA_KEY_ENV} is not set for this site's SuperNode.")
        settings.configure(SYNTHGATE_DATA_KEY=key)


def read_site_frame(path: str | os.PathLike[str]) -> Any:
    """The site's table at `path` (an absolute path to a SynthGate-encrypted Parquet file)."""
    import pandas as pd

    _ensure_key_settings()
    from generation.crypto import decrypt_file

    return pd.read_parquet(decrypt_file(Path(path)))
