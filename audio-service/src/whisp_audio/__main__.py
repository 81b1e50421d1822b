"""`python -m whisp_audio`: run the audio service."""

from whisp_audio.settings import AudioSettings
from whisp_shared.service import serve


def main() -> None:
    serve("audio-service", "whisp_audio.app:create_app", AudioSettings())


if __name__ == "__main__":
    main()
