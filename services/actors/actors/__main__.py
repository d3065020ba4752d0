from quartier_shared.runtime import main

from .app import build
from .settings import Settings


def run() -> None:
    main(build, Settings)


if __name__ == "__main__":
    run()
