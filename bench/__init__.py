"""agentbox benchmarks: ``python -m bench`` (or ``make bench``) writes ``bench/report/REPORT.md``.

The app under test runs as its own process (``agentbox serve`` on port 0), the wolkvox simulator
as another (``agentbox simulator --port 0``); the bench process plays Slack: a fake Slack Web API
(:class:`bot.fake_slack.FakeSlack`) and an HTTP client that sends signed slash commands.

The seven measurements, one module each (``--only`` takes their names):

1. ``ack`` (bench/ack.py): ack latency of bursts of slash commands, all at once and paced.
2. ``bulk`` (bench/bulk.py): one change over N agents against the limit N x L / C.
3. ``tokens`` (bench/tokens.py): K operations at once against the sum of their limits.
4. ``overhead`` (bench/overhead.py): a call through agentbox against a bare httpx call.
5. ``memory`` (bench/memory.py): the server's resident size with 10,000 calls queued.
6. ``db`` (bench/databases.py): SQLite against PostgreSQL, one replica and two.
7. ``baseline`` (bench/baseline.py, bench/baseline_app.py): a Bolt handler that calls wolkvox
   inline before it acks, against Slack's 3 s.

Each runs several times (bench/plan.py); the report (bench/report.py, plots in bench/plots.py)
shows every figure's median and min-max over the runs, PASS or MISS against its target, and why.
"""
