"""tokenfix: repairs OAuth 2.0 token endpoint responses by YAML rules.

Run it as a mitmproxy script, for example in front of an Auth0 tenant:

    mitmdump --mode reverse:https://TENANT.auth0.com -s addon/tokenfix.py \
        --set tokenfix_rules=rules.yaml
"""

import os
import sys

# mitmproxy puts a script's own folder first on sys.path (and leaves it
# there); from this folder, `addon` would be addon/addon.py, not the package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

try:
    from addon.addon import TokenFix
except ModuleNotFoundError:  # a checkout that was not installed with pip
    sys.path.insert(0, os.path.dirname(_here))
    from addon.addon import TokenFix

addons = [TokenFix()]
