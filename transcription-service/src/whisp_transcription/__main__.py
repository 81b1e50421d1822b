"""`python -m whisp_transcription`: run one transcription worker process."""

from whisp_shared.service import serve
from whisp_transcription.settings import TranscriptionSettings


def main() -> None:
    serve("transcription-worker", "whisp_transcription.app:create_app", TranscriptionSettings())


if __name__ == "__main__":
    main()
