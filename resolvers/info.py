"""The ``info`` type every resolver receives, typed with our Context."""

from __future__ import annotations

import strawberry

from app.context import Context

Info = strawberry.Info[Context, None]
