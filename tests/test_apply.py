"""Configuration as code (commands/config_file.py): plan, apply and validate, on both databases."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from commands.approvals import RequestPlan, plan_request
from commands.config_file import (
    DEFAULT_ACTOR,
    ConfigError,
    ConfigInvalid,
    PlanStep,
    apply_file,
    default_actor,
    format_plan,
    plan_file,
)
from commands.roles import ChangeDecision, Target
from storage import migrate
from storage.audit import AuditEntry
from storage.database import Database
from storage.directory import Directory, TeamPolicy, TeamRecord
from storage.models import AuditEvent, Decision, Operation
from storage.secrets import TokenCipher, generate_key
from wolkvox.model import Button

EXAMPLE = Path(__file__).resolve().parent.parent / "agentbox.example.yml"
TOKEN = "tok-BOGOTA-8f2c91d7e4"
NEW_TOKEN = "tok-BOGOTA-rotated-55aa01"
ENV = {"WOLKVOX_TOKEN_BOGOTA": TOKEN}

CONFIG = """\
operations:
  - name: bogota
    server: "0042"
    token_env: WOLKVOX_TOKEN_BOGOTA
    concurrency: 2
teams:
  - name: ventas
    operation: bogota
    agents: ["1001-1010", "1060"]
    channel: C0VENTAS
    approvals: C0SUPS
    change_channels: [C0VENTAS, C0OPS]
  - name: cobranza
    agents:
      - 2001-2005
      - 2010
    channel: C0COBRA
grants:
  - user: U0ADMIN
    role: admin
  - usergroup: S0SUPS
    role: supervisor
    teams: [ventas, cobranza]
    buttons: [dial, disposition]
  - user: U0LUIS
    role: viewer
    teams: "*"
"""


@dataclass
class Setup:
    database: Database
    directory: Directory
    tmp: Path

    def write(self, text: str, name: str = "agentbox.yml") -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    async def audit_count(self) -> int:
        async with self.database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.fixture
async def setup(database_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    database = Database(database_url)
    await migrate.upgrade(database)
    cipher = TokenCipher([generate_key()])
    try:
        yield Setup(database, Directory(database, lambda: cipher), tmp_path)
    finally:
        await database.dispose()


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the one line of ``text`` holding ``fragment``."""
    lines = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), 1) if fragment in line]
    assert len(lines) == 1, f"{fragment!r} is on lines {lines}"
    return lines[0]


def kinds(steps: list[PlanStep]) -> list[str]:
    return [step.kind for step in steps]


async def apply(
    setup: Setup, path: Path, *, environ: dict[str, str] = ENV, prune: bool = False
) -> list[PlanStep]:
    return await apply_file(
        path, setup.directory, environ=environ, prune=prune, actor="config-file"
    )


async def invalid(setup: Setup, path: Path, environ: dict[str, str] = ENV) -> list[ConfigError]:
    with pytest.raises(ConfigInvalid) as caught:
        await plan_file(path, setup.directory, environ=environ, prune=False)
    errors = caught.value.errors
    assert errors == sorted(errors, key=lambda error: error.line)
    return errors


def assert_errors(errors: list[ConfigError], expected: list[tuple[int, str]]) -> None:
    """Each expected (line, fragment) is one of the errors, and there are no others."""
    unmatched = list(errors)
    for line, fragment in expected:
        found = [e for e in unmatched if e.line == line and fragment in e.message]
        assert found, f"no error on line {line} saying {fragment!r}; got {errors}"
        unmatched.remove(found[0])
    assert not unmatched, f"unexpected errors: {unmatched}"


# --------------------------------------------------------------------------- applying


async def test_a_valid_file_applies(setup: Setup) -> None:
    path = setup.write(CONFIG)

    done = await apply(setup, path)

    assert kinds(done) == [
        "operation.create",
        "team.create",
        "team.create",
        "grant.add",
        "grant.add",
        "grant.add",
    ]
    [operation] = await setup.directory.operations()
    assert (operation.name, operation.server, operation.concurrency) == ("bogota", "0042", 2)
    secret = await setup.directory.operation_secret("bogota")
    assert secret is not None and secret[1] == TOKEN
    ventas = await setup.directory.team("ventas")
    assert ventas is not None
    assert ventas.operation == "bogota"
    assert ventas.agents == (*(str(n) for n in range(1001, 1011)), "1060")
    assert (ventas.channel_id, ventas.approvals_channel_id) == ("C0VENTAS", "C0SUPS")
    assert set(ventas.change_channels) == {"C0VENTAS", "C0OPS"}
    cobranza = await setup.directory.team("cobranza")
    assert cobranza is not None
    assert cobranza.operation == "default"
    assert cobranza.agents == ("2001", "2002", "2003", "2004", "2005", "2010")
    assert (cobranza.approvals_channel_id, cobranza.change_channels) == (None, ())
    grants = {
        (g.subject_type, g.subject_id, g.role, g.teams, g.buttons)
        for g in await setup.directory.grants()
    }
    assert grants == {
        ("user", "U0ADMIN", "admin", None, None),
        ("usergroup", "S0SUPS", "supervisor", ("cobranza", "ventas"), ("dial", "disposition")),
        ("user", "U0LUIS", "viewer", None, None),
    }
    async with setup.database.sessions() as session:
        rows = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [row.action for row in rows] == [
        "operation.put",
        "team.create",
        "team.create",
        "grant.add",
        "grant.add",
        "grant.add",
    ]
    assert {(row.slack_user_id, row.decision) for row in rows} == {
        ("config-file", Decision.ALLOWED.value)
    }
    assert [row.text for row in rows] == [step.description for step in done]
    assert all(row.reason == "agentbox apply agentbox.yml" for row in rows)


async def test_applying_twice_changes_nothing_the_second_time(setup: Setup) -> None:
    path = setup.write(CONFIG)
    assert await apply(setup, path)
    audited = await setup.audit_count()

    assert await plan_file(path, setup.directory, environ=ENV, prune=True) == []
    assert await apply(setup, path) == []
    assert await apply(setup, path, prune=True) == []

    assert await setup.audit_count() == audited
    assert format_plan([], applied=False).startswith("No changes")


async def test_the_example_file_is_valid_and_idempotent(setup: Setup) -> None:
    done = await apply(setup, EXAMPLE)

    assert "team.create" in kinds(done) and "grant.add" in kinds(done)
    assert await plan_file(EXAMPLE, setup.directory, environ=ENV, prune=True) == []


async def test_a_dry_run_lists_the_differences_and_writes_nothing(setup: Setup) -> None:
    path = setup.write(CONFIG)

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)

    assert kinds(steps) == [
        "operation.create",
        "team.create",
        "team.create",
        "grant.add",
        "grant.add",
        "grant.add",
    ]
    text = format_plan(steps, applied=False)
    assert "Would apply 6 changes" in text
    assert "+ create team 'ventas': operation 'bogota', 11 agents (1001-1010, 1060)" in text
    assert "+ grant usergroup S0SUPS supervisor over teams cobranza, ventas" in text
    assert await setup.audit_count() == 0
    assert await setup.directory.operations() == []
    assert await setup.directory.teams() == []
    assert await setup.directory.grants() == []


async def test_teams_are_reconciled_to_the_file(setup: Setup) -> None:
    await apply(setup, setup.write(CONFIG))
    changed = CONFIG.replace('["1001-1010", "1060"]', '["1001-1008", "1060-1062"]').replace(
        "    approvals: C0SUPS\n", ""
    )
    path = setup.write(changed)

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)

    assert [(step.kind, step.description) for step in steps] == [
        ("team.remove", "remove 2 agents from team 'ventas': 1009-1010"),
        ("team.add", "add 2 agents to team 'ventas': 1061-1062"),
        ("team.update", "update team 'ventas': approvals C0SUPS → none"),
    ]
    audited = await setup.audit_count()
    assert await apply(setup, path) == steps
    ventas = await setup.directory.team("ventas")
    assert ventas is not None
    assert ventas.agents == (*(str(n) for n in range(1001, 1009)), "1060", "1061", "1062")
    assert ventas.approvals_channel_id is None
    assert await setup.audit_count() == audited + 3
    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []


async def test_agents_move_between_teams_of_the_file(setup: Setup) -> None:
    await apply(setup, setup.write(CONFIG))
    moved = CONFIG.replace("      - 2001-2005\n", "      - 2001-2003\n").replace(
        "    channel: C0COBRA\n",
        '    channel: C0COBRA\n  - name: piso-2\n    agents: "2004, 2005"\n    channel: C0PISO\n',
    )
    path = setup.write(moved)

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)

    assert kinds(steps) == ["team.remove", "team.create"]  # removed first, so the move works
    await apply(setup, path)
    piso = await setup.directory.team("piso-2")
    assert piso is not None and piso.agents == ("2004", "2005")


# --------------------------------------------------------------------------- team policy

POLICY_KEYS = """\
    trail: off
    self_approval: true
    approval_buttons: [hungup, Dial]
    approval_over: 5
    two_approvers: hungup
    approval_ttl: 1h30m
"""
WITH_POLICY = CONFIG.replace(
    "    change_channels: [C0VENTAS, C0OPS]\n",
    "    change_channels: [C0VENTAS, C0OPS]\n" + POLICY_KEYS,
)
DECLARED = TeamPolicy(
    trail_enabled=False,
    self_approval=True,
    approval_buttons=("dial", "hungup"),
    approval_over_agents=5,
    two_approvers_buttons=("hungup",),
    approval_ttl_minutes=90,
)


async def policy_of(setup: Setup, team: str) -> TeamPolicy:
    record = await setup.directory.team(team)
    assert record is not None
    return record.policy


def supervisors_change(team: TeamRecord, agents: Iterable[str], button: Button) -> ChangeDecision:
    """A change the caller's grants allow outright: only a team policy can make it a request."""
    pairs = tuple((Target(agent, team.operation, team.name), button) for agent in agents)
    return ChangeDecision(allowed=pairs, needs_approval=(), refusals=())


async def test_a_teams_policy_is_applied_and_changes_need_approval_as_declared(
    setup: Setup,
) -> None:
    path = setup.write(WITH_POLICY)

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)
    done = await apply(setup, path)

    assert done == steps
    assert kinds(done) == [
        "operation.create",
        "team.create",
        "team.create",
        "team.set",  # a new team starts with the default policy; then the file's is set
        "grant.add",
        "grant.add",
        "grant.add",
    ]
    assert done[3].description == (
        "set policy of team 'ventas': trail on → off; self-approval off → on; "
        "approval-buttons none → dial, hungup; approval-over none → 5; "
        "two-approvers none → hungup; approval-ttl default → 1h30m"
    )
    assert "~ set policy of team 'ventas': trail on → off;" in format_plan(steps, applied=False)
    assert await policy_of(setup, "ventas") == DECLARED
    assert await policy_of(setup, "cobranza") == TeamPolicy()  # no keys: no step, the defaults
    async with setup.database.sessions() as session:
        rows = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(row.action, row.text) for row in rows][3] == ("team.set", done[3].description)

    # Applying it again finds nothing to do and writes nothing.
    audited = await setup.audit_count()
    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []
    assert await apply(setup, path) == []
    assert await setup.audit_count() == audited

    # What the policy means for a change that the caller's grants allow outright.
    teams = {team.name: team for team in await setup.directory.teams()}
    ventas, cobranza = teams["ventas"], teams["cobranza"]
    dial = plan_request(supervisors_change(ventas, ["1001"], Button.DIAL), teams, asked_in=None)
    assert isinstance(dial, RequestPlan)
    assert dial.why == ("team ventas requires approval for changes to `dial`",)
    assert (dial.channel, dial.approvals_needed, dial.ttl_minutes) == ("C0SUPS", 1, 90)
    hungup = plan_request(supervisors_change(ventas, ["1001"], Button.HUNGUP), teams, asked_in=None)
    assert isinstance(hungup, RequestPlan) and hungup.approvals_needed == 2
    five = [str(n) for n in range(1001, 1006)]
    few = supervisors_change(ventas, five, Button.DISPOSITION)
    assert plan_request(few, teams, asked_in=None) is None
    many = supervisors_change(ventas, [*five, "1006"], Button.DISPOSITION)
    over = plan_request(many, teams, asked_in=None)
    assert isinstance(over, RequestPlan)
    assert over.why == (
        "team ventas requires approval for changes to more than 5 of its agents "
        "(this one changes 6)",
    )
    other = supervisors_change(cobranza, ["2001"], Button.DIAL)
    assert plan_request(other, teams, asked_in=None) is None


async def test_changing_one_policy_key_changes_only_that_setting(setup: Setup) -> None:
    await apply(setup, setup.write(WITH_POLICY))
    path = setup.write(WITH_POLICY.replace("approval_over: 5", "approval_over: 12"))

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)

    assert [(step.kind, step.description) for step in steps] == [
        ("team.set", "set policy of team 'ventas': approval-over 5 → 12")
    ]
    assert format_plan(steps, applied=False).splitlines() == [
        "Would apply 1 change (dry run):",
        "  ~ set policy of team 'ventas': approval-over 5 → 12",
    ]
    audited = await setup.audit_count()
    assert await apply(setup, path) == steps
    assert await policy_of(setup, "ventas") == replace(DECLARED, approval_over_agents=12)
    assert await setup.audit_count() == audited + 1
    ventas = await setup.directory.team("ventas")
    assert ventas is not None and ventas.approvals_channel_id == "C0SUPS"  # untouched
    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []

    # A `team set` made in Slack since is found, and the next apply restores the file's policy.
    await setup.directory.configure_team(
        "ventas",
        lambda team: replace(
            team, policy=replace(team.policy, trail_enabled=True, approval_ttl_minutes=None)
        ),
        audit=AuditEntry("U0ADMIN", "team.set", "team set ventas trail on", Decision.ALLOWED),
    )
    [step] = await plan_file(path, setup.directory, environ=ENV, prune=False)
    assert step.description == (
        "set policy of team 'ventas': trail on → off; approval-ttl default → 1h30m"
    )
    await apply(setup, path)
    assert await policy_of(setup, "ventas") == replace(DECLARED, approval_over_agents=12)


async def test_policy_keys_left_out_mean_the_defaults(setup: Setup) -> None:
    await apply(setup, setup.write(WITH_POLICY))
    path = setup.write(CONFIG)

    steps = await plan_file(path, setup.directory, environ=ENV, prune=False)

    assert [(step.kind, step.description) for step in steps] == [
        (
            "team.set",
            "set policy of team 'ventas': trail off → on; self-approval on → off; "
            "approval-buttons dial, hungup → none; approval-over 5 → none; "
            "two-approvers hungup → none; approval-ttl 1h30m → default",
        )
    ]
    assert await apply(setup, path) == steps
    assert await policy_of(setup, "ventas") == TeamPolicy()
    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []


async def test_policy_values_are_read_as_team_set_reads_them(setup: Setup) -> None:
    text = """\
    teams:
      - name: ventas
        agents: ["1001"]
        channel: C0ONE
        trail: "yes"
        self_approval: on
        approval_buttons: all
        approval_over: 0
        two_approvers: none
        approval_ttl: 120s
      - name: cobranza
        agents: ["2001"]
        channel: C0TWO
        trail: True
        self_approval: false
        approval_buttons: []
        approval_over: "off"
        two_approvers: [Tipificación, colgar]
        approval_ttl: 1h 30m
      - name: soporte
        agents: ["3001"]
        channel: C0THREE
        approval_buttons:
        approval_ttl: default
      - name: piso-2
        agents: ["4001"]
        channel: C0FOUR
        approval_ttl: 24h
    """
    path = setup.write(text)

    await apply(setup, path)

    assert await policy_of(setup, "ventas") == TeamPolicy(
        self_approval=True,
        approval_buttons=("dial", "disposition", "hungup"),
        approval_over_agents=0,  # as `team set ventas approval-over 0`: every change
        approval_ttl_minutes=2,
    )
    assert await policy_of(setup, "cobranza") == TeamPolicy(
        two_approvers_buttons=("disposition", "hungup"), approval_ttl_minutes=90
    )
    assert await policy_of(setup, "soporte") == TeamPolicy()
    assert await policy_of(setup, "piso-2") == TeamPolicy(approval_ttl_minutes=24 * 60)
    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []


BAD_POLICY = """\
teams:
  - name: ventas
    agents: ["1001"]
    channel: C0ONE
    trail: maybe
    self_approval: [on]
    approval_buttons: [hungup, fly]
    approval_over: -5
    two_approvers: [none, dial]
    approval_ttl: 90s
  - name: cobranza
    agents: ["2001"]
    channel: C0TWO
    approval_over: twenty
    approval_ttl: 45
    approval_timeout: 30m
  - name: soporte
    agents: ["3001"]
    channel: C0THREE
    approval_over: 501
    approval_ttl: 25h
    approval_buttons: {dial: true}
  - name: piso-2
    agents: ["4001"]
    channel: C0FOUR
    self_approval: ~
    approval_over: 2.5
    approval_ttl: 0m
"""


async def test_every_bad_policy_value_is_reported_with_its_line(setup: Setup) -> None:
    errors = await invalid(setup, setup.write(BAD_POLICY))

    at = partial(line_of, BAD_POLICY)
    number = "must be a whole number of agents from 0 to 500"
    assert_errors(
        errors,
        [
            (at("maybe"), "team 'ventas': trail is on or off (or true or false), not 'maybe'"),
            (at("[on]"), "team 'ventas': self_approval must be a single value, not a list"),
            (at("fly"), "team 'ventas': approval_buttons: 'fly' is not a button: dial,"),
            (at("-5"), f"team 'ventas': approval_over '-5' {number}"),
            (at("[none, dial]"), "team 'ventas': two_approvers: 'none' is not a button"),
            (at("90s"), "team 'ventas': approval_ttl '90s' is not whole minutes or hours"),
            (at("twenty"), f"team 'cobranza': approval_over 'twenty' {number}"),
            (at("approval_ttl: 45"), "approval_ttl '45' needs a unit: '45m' for minutes"),
            (at("approval_timeout"), "team 'cobranza': unknown key 'approval_timeout'"),
            (at("501"), f"team 'soporte': approval_over '501' {number}"),
            (at("25h"), "'25h' is out of range: a request waits from 1 minute to 24 hours"),
            (at("{dial: true}"), "team 'soporte': approval_buttons must be a list"),
            (at("~"), "team 'piso-2': self_approval is empty"),
            (at("2.5"), f"team 'piso-2': approval_over '2.5' {number}"),
            (at("approval_ttl: 0m"), "team 'piso-2': approval_ttl '0m' is out of range"),
        ],
    )
    rendered = ConfigInvalid(Path("agentbox.yml"), errors).render().splitlines()
    over = f"agentbox.yml:{at('-5')}: team 'ventas': approval_over '-5' {number}, or off"
    assert over in rendered
    with pytest.raises(ConfigInvalid):
        await apply(setup, setup.write(BAD_POLICY))
    assert await setup.audit_count() == 0
    assert await setup.directory.teams() == []


async def test_one_bad_policy_value_applies_nothing(setup: Setup) -> None:
    await apply(setup, setup.write(CONFIG))
    audited = await setup.audit_count()
    text = WITH_POLICY.replace('["1001-1010", "1060"]', '["1001-1008"]').replace(
        "approval_over: 5", "approval_over: lots"
    )

    with pytest.raises(ConfigInvalid) as caught:
        await apply(setup, setup.write(text))

    [error] = caught.value.errors
    assert error.line == line_of(text, "approval_over: lots")
    assert await setup.audit_count() == audited
    ventas = await setup.directory.team("ventas")
    assert ventas is not None and len(ventas.agents) == 11 and ventas.policy == TeamPolicy()


# --------------------------------------------------------------------------- tokens


async def test_a_token_is_read_from_the_environment_and_stored_encrypted(
    setup: Setup, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = setup.write(CONFIG)

    planned = await plan_file(path, setup.directory, environ=ENV, prune=False)
    done = await apply(setup, path)

    assert all(TOKEN not in step.description for step in [*planned, *done])
    assert TOKEN not in format_plan(done, applied=True)
    assert "$WOLKVOX_TOKEN_BOGOTA" in planned[0].description
    async with setup.database.sessions() as session:
        ciphertext = await session.scalar(select(Operation.token_ciphertext))
        texts = list(await session.scalars(select(AuditEvent.text)))
    assert ciphertext is not None and TOKEN not in ciphertext
    assert all(TOKEN not in text for text in texts)
    assert TOKEN not in caplog.text
    if database_url.startswith("sqlite"):
        await setup.database.dispose()  # flush everything to the files
        file = Path(database_url.partition(":///")[2])
        for part in file.parent.glob(file.name + "*"):  # the database, its WAL and journal
            assert TOKEN.encode() not in part.read_bytes(), part.name


async def test_a_new_token_in_the_environment_is_planned_as_a_token_change(setup: Setup) -> None:
    path = setup.write(CONFIG)
    await apply(setup, path)
    rotated = {"WOLKVOX_TOKEN_BOGOTA": NEW_TOKEN}

    steps = await plan_file(path, setup.directory, environ=rotated, prune=False)

    assert [(step.kind, step.description) for step in steps] == [
        (
            "operation.update",
            "update operation 'bogota': token changed (from $WOLKVOX_TOKEN_BOGOTA)",
        )
    ]
    assert await apply(setup, path, environ=rotated) == steps
    secret = await setup.directory.operation_secret("bogota")
    assert secret is not None and secret[1] == NEW_TOKEN
    assert await plan_file(path, setup.directory, environ=rotated, prune=False) == []

    moved = CONFIG.replace('server: "0042"', "server: 0043")  # unquoted: kept as written
    [step] = await plan_file(setup.write(moved), setup.directory, environ=rotated, prune=False)
    assert step.description == "update operation 'bogota': server 0042 → 0043"


# --------------------------------------------------------------------------- grants


async def test_prune_removes_the_grants_not_in_the_file(setup: Setup) -> None:
    path = setup.write(CONFIG)
    await apply(setup, path)
    extra, _ = await setup.directory.add_grant(
        subject_type="user",
        subject_id="U0EXTRA",
        role="supervisor",
        teams=["ventas"],
        buttons=None,
        created_by="U0ADMIN",
        audit=AuditEntry("U0ADMIN", "grant.add", "grant", Decision.ALLOWED),
    )

    assert await plan_file(path, setup.directory, environ=ENV, prune=False) == []
    steps = await plan_file(path, setup.directory, environ=ENV, prune=True)

    assert [(step.kind, step.description) for step in steps] == [
        ("grant.remove", f"revoke grant #{extra.id}: user U0EXTRA supervisor over team ventas")
    ]
    audited = await setup.audit_count()
    assert await apply(setup, path, prune=True) == steps
    subjects = {grant.subject_id for grant in await setup.directory.grants()}
    assert subjects == {"U0ADMIN", "S0SUPS", "U0LUIS"}
    async with setup.database.sessions() as session:
        last = await session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert last is not None and last.action == "grant.remove"
    assert await setup.audit_count() == audited + 1


async def test_a_changed_grant_is_added_and_the_old_one_pruned(setup: Setup) -> None:
    await apply(setup, setup.write(CONFIG))
    path = setup.write(CONFIG.replace("buttons: [dial, disposition]", "buttons: [all]"))

    steps = await plan_file(path, setup.directory, environ=ENV, prune=True)

    assert kinds(steps) == ["grant.add", "grant.remove"]
    assert steps[0].description == "grant usergroup S0SUPS supervisor over teams cobranza, ventas"
    await apply(setup, path, prune=True)
    assert await plan_file(path, setup.directory, environ=ENV, prune=True) == []


# --------------------------------------------------------------------------- validation

BROKEN = """\
operations:
  - name: bogota
    server: "0042"
    token_env: MISSING_TOKEN
    concurrency: 3
    token: do-not-echo-this
  - name: default
    server: "1"
    token_env: WOLKVOX_TOKEN_BOGOTA
teams:
  - name: show
    agents: ["1001"]
    channel: C0ONE
  - name: ventas
    operation: lima
    agents: ["1050-1001", "10x1"]
    channel: "#ventas"
    colour: red
  - name: cobranza
    channel: C0TWO
grants:
  - user: U0ONE
    role: admin
    teams: [ventas]
  - user: U0TWO
    role: supervisor
  - usergroup: S0ONE
    role: viewer
    teams: [nowhere]
    buttons: [dial]
  - user: maria
    role: boss
    teams: [cobranza]
"""


async def test_every_error_is_reported_with_its_line(setup: Setup) -> None:
    errors = await invalid(setup, setup.write(BROKEN))

    at = partial(line_of, BROKEN)
    assert_errors(
        errors,
        [
            (at("MISSING_TOKEN"), "MISSING_TOKEN (token_env) is not set"),
            (at("concurrency: 3"), "concurrency '3' must be a whole number from 1 to 2"),
            (at("do-not-echo-this"), "never write a token in the file"),
            (at("name: default"), "the file cannot declare it"),
            (at("name: show"), "is a word agentbox uses"),
            (at("operation: lima"), "operation 'lima' is neither declared"),
            (at("1050-1001"), "agent range '1050-1001' runs backwards: write '1001-1050'"),
            (at("1050-1001"), "'10x1' is not an agent id or range"),
            (at('"#ventas"'), "channel '#ventas' is not a Slack id"),
            (at("colour"), "unknown key 'colour'"),
            (at("name: cobranza"), "team 'cobranza': 'agents' is missing"),
            (at("teams: [ventas]"), "an admin grant covers every team and takes no teams"),
            (at("role: supervisor"), "a supervisor grant needs teams"),
            (at("teams: [nowhere]"), "team 'nowhere' is neither declared under teams nor stored"),
            (at("buttons: [dial]"), "a viewer grant takes no buttons"),
            (at("user: maria"), "'maria' is not a Slack id"),
            (at("role: boss"), "'boss' is not a role"),
        ],
    )
    assert all("do-not-echo-this" not in error.message for error in errors)
    rendered = ConfigInvalid(Path("agentbox.yml"), errors).render().splitlines()
    colour = f"agentbox.yml:{at('colour')}: team 'ventas': unknown key 'colour': the keys are"
    assert any(line.startswith(colour) for line in rendered)
    assert len(rendered) == len(errors)
    assert await setup.audit_count() == 0
    assert await setup.directory.teams() == []


async def test_nothing_is_applied_when_one_entry_is_wrong(setup: Setup) -> None:
    path = setup.write(CONFIG.replace("role: viewer", "role: lector").replace("U0LUIS", "u0luis"))

    with pytest.raises(ConfigInvalid) as caught:
        await apply(setup, path)

    [error] = caught.value.errors
    assert error.line == line_of(CONFIG, "U0LUIS")
    assert await setup.audit_count() == 0
    assert await setup.directory.operations() == []


async def test_yaml_syntax_errors_have_their_line(setup: Setup) -> None:
    text = "teams:\n  - name: ventas\n    agents: [1001\n    channel: C0ONE\ngrants: []\n"
    [error] = await invalid(setup, setup.write(text))
    assert error.line in (3, 4, 5)
    assert error.message.startswith("not valid YAML")

    star = "grants:\n  - user: U0ONE\n    role: viewer\n    teams: *\n"
    [error] = await invalid(setup, setup.write(star))
    assert error.line == 4
    assert 'write "*" in quotes' in error.message

    [error] = await invalid(setup, setup.write("- just\n- a list\n"))
    assert (error.line, error.message) == (
        1,
        "the file must be a mapping of keys like `name: …`, not a list",
    )


async def test_unreadable_and_empty_files(setup: Setup) -> None:
    [error] = await invalid(setup, setup.tmp / "missing.yml")
    assert error.line == 0 and "cannot read the file" in error.message
    assert await plan_file(setup.write(""), setup.directory, environ=ENV, prune=False) == []


async def test_prune_needs_a_grants_section(setup: Setup) -> None:
    await apply(setup, setup.write(CONFIG))
    no_grants = setup.write(CONFIG.partition("grants:")[0])

    with pytest.raises(ConfigInvalid) as caught:
        await plan_file(no_grants, setup.directory, environ=ENV, prune=True)
    [error] = caught.value.errors
    assert error.line == 0 and "`grants: []` to remove every grant" in error.message
    assert await plan_file(no_grants, setup.directory, environ=ENV, prune=False) == []

    empty = setup.write(CONFIG.partition("grants:")[0] + "grants: []\n")
    steps = await plan_file(empty, setup.directory, environ=ENV, prune=True)
    assert kinds(steps) == ["grant.remove"] * 3


def test_the_default_actor_fits_the_audit_table() -> None:
    actor = default_actor()
    assert actor.startswith(DEFAULT_ACTOR) and len(actor) <= 32


async def test_names_and_values_follow_the_grammar(setup: Setup) -> None:
    text = """\
    teams:
      - name: Ventas
        agents: 001-003
        channel: C0ONE
      - name: "1001"
        agents: ["1-100000"]
        channel: C0TWO
      - name: ok-team
        operation: default
        agents: ["1234567890123456"]
        channel: C0TWO
        change_channels: C0THREE
    grants:
      - user: U0ONE
        usergroup: S0ONE
        role: requester
        teams: ["*", ventas]
      - user: U0TWO
        role: supervisor
        teams: [VENTAS]
        buttons: [tipificación, fly]
    """
    errors = await invalid(setup, setup.write(text))

    at = partial(line_of, text)
    assert_errors(
        errors,
        [
            (at('name: "1001"'), "looks like an agent id or range"),
            (at("1-100000"), "holds 100,000 agents; one entry may hold at most 500"),
            (at("1234567890123456"), "too long for an agent id"),
            (at("- user: U0ONE"), "exactly one of 'user: U0123ABC' or 'usergroup: S0123ABC'"),
            (at('teams: ["*", ventas]'), '"*" already means every team'),
            (at("fly"), "'fly' is not a button"),
        ],
    )

    fixed = """\
    teams:
      - name: Ventas
        agents: 001-003
        channel: C0ONE
    grants:
      - user: U0ONE
        role: requester
        teams: ["*"]
      - user: U0TWO
        role: supervisor
        teams: [VENTAS]
        buttons: [tipificación]
    """
    await apply(setup, setup.write(fixed))
    ventas = await setup.directory.team("ventas")  # names are compared in lowercase
    assert ventas is not None and ventas.agents == ("001", "002", "003")  # zeros kept
    grants = {(g.subject_id, g.teams, g.buttons) for g in await setup.directory.grants()}
    assert grants == {("U0ONE", None, None), ("U0TWO", ("ventas",), ("disposition",))}


# --------------------------------------------------------------------------- agent conflicts


async def test_an_agent_in_two_teams_of_one_operation_is_reported(setup: Setup) -> None:
    text = """\
    teams:
      - name: ventas
        agents: ["1001-1010"]
        channel: C0ONE
      - name: cobranza
        agents:
          - "1020"
          - "1005-1012"
        channel: C0TWO
      - name: soporte
        operation: bogota
        agents: ["1001-1010"]
        channel: C0THREE
    operations:
      - name: bogota
        server: "0042"
        token_env: WOLKVOX_TOKEN_BOGOTA
    """
    errors = await invalid(setup, setup.write(text))

    assert_errors(
        errors,
        [
            (
                line_of(text, '"1005-1012"'),
                "team 'cobranza': 6 agents (1005-1010) also in team 'ventas' (line 2)",
            )
        ],
    )  # soporte is in another operation: no conflict


async def test_an_agent_in_a_stored_team_the_file_does_not_name_is_reported(
    setup: Setup,
) -> None:
    await setup.directory.create_team(
        "soporte",
        operation="default",
        agents=["1001", "1002"],
        channel_id="C0SOP",
        approvals_channel_id=None,
        change_channels=None,
        audit=AuditEntry("U0ADMIN", "team.create", "team create", Decision.ALLOWED),
    )
    text = """\
    teams:
      - name: ventas
        agents: ["1002-1003"]
        channel: C0ONE
      - name: soporte
        operation: bogota
        agents: ["1001"]
        channel: C0SOP
    operations:
      - name: bogota
        server: "0042"
        token_env: WOLKVOX_TOKEN_BOGOTA
    grants:
      - user: U0ONE
        role: viewer
        teams: [soporte]
    """
    errors = await invalid(setup, setup.write(text))

    assert_errors(
        errors,
        [(line_of(text, "operation: bogota"), "team 'soporte' belongs to operation 'default'")],
    )

    # Declared in the file, the stored team gives its agent up (removed first, then added).
    moving = textwrap.dedent(text).replace("    operation: bogota\n", "")
    steps = await plan_file(setup.write(moving), setup.directory, environ=ENV, prune=False)
    assert kinds(steps) == ["operation.create", "team.remove", "team.create", "grant.add"]

    # Not declared, it keeps its agents and the file is refused.
    alone = """\
    teams:
      - name: ventas
        agents: ["1002-1003"]
        channel: C0ONE
    """
    assert_errors(
        await invalid(setup, setup.write(alone)),
        [(3, "team 'ventas': 1 agent (1002) already in team 'soporte', which this file does not")],
    )
