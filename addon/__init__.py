"""tokenfix: a mitmproxy addon that repairs OAuth 2.0 token responses by rules."""
