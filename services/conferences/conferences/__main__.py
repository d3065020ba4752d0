from quartier_shared.runtime import serve

from .app import build
from .settings import Settings


def main() -> None:
    settings = Settings()
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
