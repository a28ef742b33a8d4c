"""The OTLP/HTTP span exporter, with the encoder of app/telemetry/otlp_encoding.py.

Everything but the encoding is the library's: endpoint, headers, compression, timeout and
retries from the standard variables, its HTTP client and its own metrics. Should a future
release of the exporter rearrange the internals this class sends through, it exports with
the library's encoder instead (and says so once), rather than failing to export.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from app.telemetry.otlp_encoding import encode_spans

log = logging.getLogger("chimera.telemetry")

_INTERNALS = ("_shutdown", "_metrics", "_client", "_max_request_size")


class OTLPHttpSpanExporter(OTLPSpanExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._own_encoding = all(hasattr(self, name) for name in _INTERNALS)
        if not self._own_encoding:
            log.warning("the OTLP exporter changed; spans are encoded by the library's encoder")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._own_encoding:
            return super().export(spans)
        if self._shutdown:
            log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                body = encode_spans(spans)
            except Exception as error:
                log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(body):  # 0 or less: no limit
                log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(body),
                    self._max_request_size,
                )
                result.error = ValueError("span batch over max_request_size")
                return SpanExportResult.FAILURE
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
