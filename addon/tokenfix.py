"""tokenfix: repairs OAuth 2.0 token endpoint responses by YAML rules.

Run it as a mitmproxy script, for example in front of an Auth0 tenant:

    mitmdump --mode reverse:https://TENANT.auth0.com -s addon/tokenfix.py \
        --set tokenfix_rules=rules.yaml
"""

import sys
from pathlib import Path

try:
    from addon.addon import TokenFix
except ModuleNotFoundError:  # a checkout that was not installed with pip
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from addon.addon import TokenFix

addons = [TokenFix()]
