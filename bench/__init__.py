"""agentbox benchmarks: ``python -m bench`` (or ``make bench``).

The app under test runs as its own process (``agentbox serve`` on port 0), the wolkvox simulator
as another (``agentbox simulator --port 0``); the bench process holds the Slack side: a fake Slack
Web API (:class:`bot.fake_slack.FakeSlack`) and an HTTP client that sends signed slash commands.

Measurements:

- **ack latency**: a burst of concurrent slash commands (default 200, each a valid one-agent change
  from an admin) sent to ``POST /slack/events``; the time from sending each request to receiving
  its HTTP response, measured by the client, against Slack's 3 s deadline. A burst of
  ``GET /healthz`` on a fresh connection pool first gives the transport's own baseline.
- **bulk completion**: one ``hide dial 1001-1100`` (100 agents) against the simulator at 50 ms per
  call with ``WOLKVOX_CONCURRENCY=1``: the time from sending the command until the summary
  ("100/100") reaches the fake Slack, against the floor of 100 x 50 ms.

Each measurement runs ``--runs`` times, each time on a fresh server and database; the table shows
the median and the spread (min-max) over the runs.
"""
