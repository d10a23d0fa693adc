"""The tokenfix demo: a local authorization server and an Alexa-style account linking.

`python -m demo` (what `make demo` runs) starts the server of `demo.authserver`, puts
mitmdump with tokenfix in front of it and shows what an Alexa-style client receives
with and without the proxy. The tests reuse the same server.
"""
