"""tokenfix's benchmarks: `make bench` runs them and writes bench/RESULTS.md.

- `exchanges`: the canned token exchange and the rules files of any size
- `upstream`: a fast loopback HTTP/1.1 upstream that answers the canned bodies
- `loadgen`: the Python load generator used when wrk is not installed
- `proxies`: mitmdump processes and their CPU and memory, read from /proc
- `__main__`: the load, memory and profile runs, and the report
"""
