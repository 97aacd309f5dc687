"""Keep the README's configuration table true to the code.

Every field of ``quantdesk.settings.Settings`` must appear in README.md as ``QUANTDESK_<NAME>``,
and every ``QUANTDESK_*`` name the README mentions must be a setting or one of the few
variables read elsewhere (listed below).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from quantdesk.settings import Settings

# Read from the environment outside Settings: the CLI's password, and the tests' servers.
NOT_SETTINGS = {"QUANTDESK_PASSWORD", "QUANTDESK_TEST_PG_URL", "QUANTDESK_TEST_REDIS_URL"}


def main() -> int:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    prefix = Settings.model_config.get("env_prefix", "").upper()
    settings = {f"{prefix}{name.upper()}" for name in Settings.model_fields}
    mentioned = set(re.findall(r"\bQUANTDESK_[A-Z0-9_]*[A-Z0-9]\b", readme))
    undocumented = sorted(settings - mentioned)
    unknown = sorted(mentioned - settings - NOT_SETTINGS)
    for name in undocumented:
        print(f"README.md does not document the setting {name}", file=sys.stderr)
    for name in unknown:
        print(f"README.md mentions {name}, which is no setting", file=sys.stderr)
    if undocumented or unknown:
        print("Update the Configuration table in README.md.", file=sys.stderr)
        return 1
    print(f"README.md documents all {len(settings)} settings.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
