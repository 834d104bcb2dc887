"""Write the public OpenAPI document (what `/openapi.json` serves) to a file, for the SDK
generator (scripts/generate-sdk): pretty-printed, keys sorted, the same bytes on every machine.

The document is built from the settings' defaults only: settings from the environment or a
`.env` (`PUBLIC_BASE_URL`, limits, …) would otherwise leak into `servers` and descriptions
and make the committed SDK depend on who generated it. No database or server is needed.

    python scripts/dump_openapi.py clients/typescript/openapi.json
"""

import json
import os
import sys
from pathlib import Path


def public_document() -> dict[str, object]:
    from app.core.config import Settings
    from app.main import create_app

    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            del os.environ[name]
    return create_app(Settings(_env_file=None)).openapi()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT.json", file=sys.stderr)
        return 2
    text = json.dumps(public_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    Path(argv[1]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv))
