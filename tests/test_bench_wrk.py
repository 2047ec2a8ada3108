"""The benchmark's parser of `wrk --latency` output (bench/wrk.py): counts, rates and latencies in ms."""

import pytest

from bench.wrk import parse_wrk

# A loaded run: latencies in ms and s, socket errors and non-2xx responses.
LOADED = """\
Running 10s test @ http://127.0.0.1:41235/predict
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.33ms  201.50ms   2.01s    71.20%
    Req/Sec    20.15      9.87    50.00     65.00%
  Latency Distribution
     50%  437.12ms
     75%  550.00ms
     90%  650.40ms
     99%    1.25s
  357 requests in 10.02s, 98.51KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 17
Requests/sec:     35.63
Transfer/sec:      9.83KB
"""

# A fast run: latencies in us and ms, no socket-error or non-2xx line.
FAST = """\
Running 5s test @ http://127.0.0.1:38001/predict
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   598.21us  310.42us   9.87ms   97.31%
    Req/Sec     1.68k   120.33     1.90k    80.00%
  Latency Distribution
     50%  512.00us
     75%  580.25us
     90%  701.90us
     99%    5.23ms
  8395 requests in 5.00s, 2.10MB read
Requests/sec:   1678.91
Transfer/sec:    430.12KB
"""


def test_loaded_run_with_errors():
    r = parse_wrk(LOADED, "ours c=16 #1", 16, 10)
    assert r.error is None
    assert (r.label, r.connections, r.seconds) == ("ours c=16 #1", 16, 10)
    assert r.requests == 357
    assert r.rps == pytest.approx(35.63, rel=1e-12)
    assert r.p50_ms == pytest.approx(437.12, rel=1e-12)
    assert r.p99_ms == pytest.approx(1250.0, rel=1e-12)  # "1.25s"
    assert r.socket_errors == {"connect": 0, "read": 3, "write": 0, "timeout": 2}
    assert r.socket_error_total == 5
    assert r.non_2xx == 17
    assert r.ok == 357 - 17


def test_fast_run_in_microseconds_without_error_lines():
    r = parse_wrk(FAST)
    assert r.error is None
    assert r.requests == 8395
    assert r.rps == pytest.approx(1678.91, rel=1e-12)
    assert r.p50_ms == pytest.approx(0.512, rel=1e-12)  # "512.00us"
    assert r.p99_ms == pytest.approx(5.23, rel=1e-12)
    assert r.socket_errors == {}
    assert r.socket_error_total == 0
    assert r.non_2xx == 0
    assert r.ok == 8395


def test_brief_shows_the_converted_latencies():
    assert parse_wrk(FAST, "ours c=1 #1").brief() == (
        "ours c=1 #1: 1679 req/s, p50 0.51 ms, p99 5.23 ms, 8395 requests, non-2xx 0"
    )


def test_output_without_a_request_count_is_an_error():
    r = parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert r.error is not None
    assert r.error.startswith("could not parse wrk output: unable to connect")
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms) == (0, None, None, None)
