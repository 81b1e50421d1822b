"""Fetch a recording's bytes by the `audio_uri` its event carries.

`http(s)://` goes to the audio service (`GET /audio/{id}`); `file://` reads from the
shared folder, and only from inside it, so a crafted event cannot read other files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from pydantic import SecretStr

from whisp_shared.caller import service_headers
from whisp_transcription.errors import (
    AudioFetchRefused,
    AudioNotFound,
    AudioTooLarge,
    AudioUnavailable,
    BadAudioUri,
)


class AudioFetcher:
    def __init__(
        self,
        audio_dir: Path | None,
        max_bytes: int,
        timeout_s: float,
        token: SecretStr | None = None,
    ) -> None:
        self.audio_dir = audio_dir.resolve() if audio_dir else None
        self.max_bytes = max_bytes
        # The service token and no user: a worker is a trusted service that reads any
        # recording it is handed, whoever owns it (see whisp_shared.caller).
        self.client = httpx.AsyncClient(timeout=timeout_s, headers=service_headers(token))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, uri: str) -> bytes:
        scheme = urlparse(uri).scheme
        if scheme in ("http", "https"):
            return await self._fetch_http(uri)
        if scheme == "file":
            return self._read_file(Path(unquote(urlparse(uri).path)))
        raise BadAudioUri(f"unsupported audio_uri scheme in {uri!r}")

    async def _fetch_http(self, uri: str) -> bytes:
        try:
            async with self.client.stream("GET", uri) as response:
                if response.status_code == 404:
                    raise AudioNotFound(f"the recording is gone from the audio service ({uri})")
                if response.status_code >= 500 or response.status_code == 429:
                    raise AudioUnavailable(
                        f"the audio service answered {response.status_code} for {uri}"
                    )
                if response.status_code != 200:
                    raise AudioFetchRefused(
                        f"the audio service refused {uri} with {response.status_code}"
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    self._check_size(len(body))
                return bytes(body)
        except httpx.TransportError as exc:
            raise AudioUnavailable(f"cannot reach the audio service for {uri}: {exc}") from exc

    def _read_file(self, path: Path) -> bytes:
        if self.audio_dir is None:
            raise BadAudioUri(
                "file:// audio needs transcription.audio_dir (the folder shared with the "
                "audio service)"
            )
        resolved = path.resolve()
        if not resolved.is_relative_to(self.audio_dir):
            raise BadAudioUri(f"{path} is outside the shared audio folder")
        if not resolved.is_file():
            raise AudioNotFound(f"the recording file {path} does not exist")
        self._check_size(resolved.stat().st_size)
        return resolved.read_bytes()

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise AudioTooLarge(
                f"the recording is larger than the {self.max_bytes // (1024 * 1024)} MiB limit"
            )
