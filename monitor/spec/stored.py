"""The validation context of a spec read back from the database.

It was checked in full when it was stored, so the checks that need a detector's class (torch,
scipy, frouros) are skipped and listing models or reading a status stays light:
``ModelSpec.model_validate(row, context=STORED)``.
"""

from __future__ import annotations

from pydantic import ValidationInfo

STORED = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))
