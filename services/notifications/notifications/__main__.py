import json
import sys

from quartier_shared.runtime import serve

from .app import build
from .settings import Settings


def main() -> None:
    if sys.argv[1:] == ["asyncapi"]:
        # The event catalogue, with the broker address of the compose deployment.
        print(json.dumps(build(Settings(kafka_bootstrap_servers="kafka:9092")).state.asyncapi, indent=2))
        return
    settings = Settings()
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
