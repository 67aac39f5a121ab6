"""The `revops` command line. Each command imports its layer only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_sandbox(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser("sandbox", help="the sandbox CRM, billing and ERP systems")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)

    generate = sandbox_commands.add_parser(
        "generate", help="write a state directory with realistic data and known drift"
    )
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--customers", type=int, default=200)
    generate.add_argument("--months", type=int, default=12)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--drift-rate", type=float, default=0.05)
    generate.set_defaults(run=_run_generate)

    serve = sandbox_commands.add_parser("serve", help="serve a state directory over HTTP")
    serve.add_argument("--state", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--crm-port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--billing-port", type=int, default=0)
    serve.add_argument("--erp-port", type=int, default=0)
    serve.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="SYSTEM=N/s",
        help="requests per second a system accepts, e.g. billing=100/s (repeatable)",
    )
    serve.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="faults to inject, e.g. 'error_rate=0.1,latency_ms=50,lost_reply_rate=0.05'",
    )
    serve.add_argument(
        "--concurrency",
        action="append",
        default=[],
        metavar="SYSTEM=N",
        help="requests a system serves at once, e.g. erp=5 (429 above it)",
    )
    serve.add_argument("--crm-client-id", help="accept only this CRM client id")
    serve.add_argument("--crm-client-secret", help="accept only this CRM client secret")
    serve.add_argument("--billing-key", help="accept only this billing secret key")
    serve.add_argument("--erp-token", help="accept only this ERP bearer token")
    serve.add_argument(
        "--deliver-to",
        metavar="URL",
        help="deliver every change as a signed webhook to URL/webhooks/<source>",
    )
    for source in ("billing", "crm", "erp"):
        serve.add_argument(
            f"--{source}-webhook-secret",
            help=f"signing secret (default: REVOPS_{source.upper()}_WEBHOOK_SECRET or the demo's)",
        )
    serve.set_defaults(run=_run_serve)

    change = sandbox_commands.add_parser(
        "change", help="make a scripted change, through the running sandbox if one serves DIR"
    )
    change.add_argument("--state", type=Path, required=True)
    change.add_argument("name", help="win-opportunity, new-invoice, pay-invoice, drift-erp-invoice")
    change.set_defaults(run=_run_change)


def _add_webhooks(commands: argparse._SubParsersAction) -> None:
    webhooks = commands.add_parser("webhooks", help="the webhook receiver (landing zone)")
    webhooks_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    serve = webhooks_commands.add_parser(
        "serve", help="receive signed webhooks and land each event once as a file"
    )
    serve.add_argument("--landing-dir", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.set_defaults(run=_run_webhooks_serve)


def _run_webhooks_serve(args: argparse.Namespace) -> int:
    from revops_pipelines.landing_zone.serve import serve_forever
    from revops_pipelines.settings import Settings

    settings = Settings.from_env()
    serve_forever(
        args.landing_dir,
        secrets=settings.webhook_secrets(),
        ledger_url=settings.ledger_url,
        host=args.host,
        port=args.port,
        body_limit=settings.webhook_body_limit,
    )
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from revops_pipelines.sandbox.generate import generate_state

    counts = generate_state(
        args.out,
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        drift_rate=args.drift_rate,
    )
    for name, count in sorted(counts.items()):
        print(f"{name}: {count}")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from revops_pipelines.sandbox.serve import Credentials, WebhookSecrets, serve_forever
    from revops_pipelines.settings import Settings

    defaults = Settings.from_env().webhook_secrets()
    secrets = WebhookSecrets(
        **{
            source: getattr(args, f"{source}_webhook_secret") or defaults[source]
            for source in ("billing", "crm", "erp")
        }
    )
    serve_forever(
        args.state,
        host=args.host,
        ports={"crm": args.crm_port, "billing": args.billing_port, "erp": args.erp_port},
        rate_limits=args.rate_limit,
        faults=args.faults,
        concurrency=args.concurrency,
        credentials=Credentials(
            crm_client_id=args.crm_client_id,
            crm_client_secret=args.crm_client_secret,
            billing_key=args.billing_key,
            erp_token=args.erp_token,
        ),
        deliver_to=args.deliver_to,
        webhook_secrets=secrets,
    )
    return 0


def _run_change(args: argparse.Namespace) -> int:
    from revops_pipelines.sandbox.changes import ChangeError
    from revops_pipelines.sandbox.serve import request_change

    try:
        touched = request_change(args.state, args.name)
    except (KeyError, ChangeError) as error:
        print(f"revops sandbox change: {error.args[0]}", file=sys.stderr)
        return 2
    for record in touched:
        print(f"{record['system']} {record['object']} {record['id']}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from revops_pipelines.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            state=args.state,
            out=args.out,
            dry_run=args.dry_run,
            customers=args.customers,
            months=args.months,
            seed=args.seed,
        )
    )


def _run_trace(args: argparse.Namespace) -> int:
    import duckdb

    from revops_pipelines.reconciliation.run import now_for
    from revops_pipelines.reconciliation.trace import TraceNotFoundError, trace
    from revops_pipelines.settings import Settings

    settings = Settings.from_env()
    path = settings.duckdb_path
    if not path.exists():
        print(f"no analytical store at {path}: run `revops demo` or the job first", file=sys.stderr)
        return 2
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            print(trace(con, args.id, as_of=now_for(settings.as_of or None)))
        except TraceNotFoundError as error:
            print(error, file=sys.stderr)
            return 1
    return 0


def _run_dev(args: argparse.Namespace) -> int:
    from revops_pipelines.demo import run_dev

    return run_dev(port=args.port)


def _add_ledger(commands: argparse._SubParsersAction) -> None:
    ledger = commands.add_parser("ledger", help="the operational ledger (REVOPS_LEDGER_URL)")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    upgrade = ledger_commands.add_parser("upgrade", help="apply the ledger's migrations")
    upgrade.set_defaults(run=_run_ledger_upgrade)


def _run_ledger_upgrade(args: argparse.Namespace) -> int:
    from revops_pipelines.ledger import Ledger
    from revops_pipelines.settings import Settings

    with Ledger(Settings.from_env().ledger_url, upgrade=False) as ledger:
        before = ledger.revision()
        after = ledger.upgrade()
    print(f"ledger at revision {after} (was {before or 'empty'})")
    return 0


def _add_corrections(commands: argparse._SubParsersAction) -> None:
    corrections = commands.add_parser(
        "corrections", help="plan and push the corrections of open findings"
    )
    sub = corrections.add_subparsers(dest="corrections_command", required=True)
    plan = sub.add_parser("plan", help="dry run: print the plan, change nothing anywhere")
    plan.add_argument("--limit", type=int, default=50, help="actions to show (default 50)")
    plan.set_defaults(run=_run_corrections_plan)
    push = sub.add_parser("push", help="plan, then send the plan to the three systems")
    push.add_argument(
        "--approve", action="store_true", help="approve a plan over the blast-radius cap"
    )
    push.add_argument("--by", default="", help="who approves (default: $USER)")
    push.set_defaults(run=_run_corrections_push)
    approve = sub.add_parser("approve", help="approve a plan over the blast-radius cap")
    approve.add_argument("plan_id")
    approve.add_argument("--by", default="", help="who approves (default: $USER)")
    approve.set_defaults(run=_run_corrections_approve)
    dead = sub.add_parser("dead-letters", help="corrections that failed for good")
    dead.set_defaults(run=_run_dead_letters)
    replay = sub.add_parser("replay", help="send dead letters again with the same keys")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID")
    replay.add_argument("--all", action="store_true", help="every open dead letter")
    replay.set_defaults(run=_run_replay)


def _plan_from_store(read_only: bool):
    import duckdb

    from revops_pipelines.corrections.planner import build_plan
    from revops_pipelines.corrections.policy import load_policy
    from revops_pipelines.settings import Settings

    settings = Settings.from_env()
    policy = load_policy(settings.policy_path)
    if not settings.duckdb_path.exists():
        raise SystemExit(f"no analytical store at {settings.duckdb_path}: run the job first")
    con = duckdb.connect(str(settings.duckdb_path), read_only=read_only)
    return settings, policy, con, build_plan(con, policy)


def _print_plan(plan, limit: int) -> None:
    from revops_pipelines.corrections.run import preview

    money = ", ".join(f"{c} {v}" for c, v in sorted(plan.money_minor.items())) or "none"
    print(f"plan {plan.plan_id}: {len(plan.actions)} actions, money at stake (minor) {money}")
    for key, entry in sorted(plan.radius.items()):
        print(
            f"  {key}: {int(entry['actions'])} actions, {entry['share']:.1%} of "
            f"{int(entry['records'])} records"
        )
    for line in plan.over_cap:
        print(f"  over the cap: {line}")
    print(preview(plan, limit=limit))
    for held in plan.held:
        print(f"held for review: {held.exception_id} {held.drift_type}: {held.reason}")


def _run_corrections_plan(args: argparse.Namespace) -> int:
    _, _, con, plan = _plan_from_store(read_only=True)
    con.close()
    _print_plan(plan, args.limit)
    print("dry run: nothing was sent, stored or changed")
    return 0


def _run_corrections_push(args: argparse.Namespace) -> int:
    import getpass

    from revops_pipelines.corrections.run import (
        CapExceeded,
        check_cap,
        load_actions,
        push_actions,
        store_plan,
    )
    from revops_pipelines.ledger import Ledger

    settings, policy, con, plan = _plan_from_store(read_only=False)
    try:
        store_plan(con, plan)
        actions = load_actions(con, plan.plan_id)
    finally:
        con.close()
    _print_plan(plan, 10)
    with Ledger(settings.ledger_url) as ledger:
        if args.approve:
            ledger.approve(plan.plan_id, by=args.by or getpass.getuser())
        try:
            check_cap(plan.plan_id, plan.over_cap, ledger)
        except CapExceeded as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return 3
        summary = push_actions(settings, policy, ledger, plan.plan_id, actions, progress=True)
    print(summary.line())
    return 0 if summary.complete else 1


def _run_corrections_approve(args: argparse.Namespace) -> int:
    import getpass

    from revops_pipelines.ledger import Ledger
    from revops_pipelines.settings import Settings

    who = args.by or getpass.getuser()
    with Ledger(Settings.from_env().ledger_url) as ledger:
        ledger.approve(args.plan_id, by=who)
    print(f"plan {args.plan_id} approved by {who}")
    return 0


def _run_dead_letters(args: argparse.Namespace) -> int:
    from revops_pipelines.ledger import Ledger
    from revops_pipelines.settings import Settings

    with Ledger(Settings.from_env().ledger_url) as ledger:
        letters = ledger.dead_letters()
    for letter in letters:
        print(
            f"{letter['id']}\t{letter['target']} {letter['operation']} {letter['record_type']} "
            f"{letter['external_id']}\t{letter['http_status']} {letter['error_code']}: "
            f"{letter['error_message']}"
        )
    print(f"{len(letters)} open dead letters")
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from revops_pipelines.corrections.policy import load_policy
    from revops_pipelines.corrections.run import replay
    from revops_pipelines.ledger import Ledger, LedgerError
    from revops_pipelines.settings import Settings

    if not args.ids and not args.all:
        print("revops corrections replay: name dead letter ids or --all", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    with Ledger(settings.ledger_url) as ledger:
        try:
            summary = replay(
                settings,
                load_policy(settings.policy_path),
                ledger,
                None if args.all else args.ids,
                progress=True,
            )
        except LedgerError as error:
            print(f"revops corrections replay: {error}", file=sys.stderr)
            return 2
    print(summary.line())
    return 0 if summary.complete else 1


def _add_exceptions(commands: argparse._SubParsersAction) -> None:
    exceptions = commands.add_parser("exceptions", help="decide about findings")
    exception_commands = exceptions.add_subparsers(dest="exceptions_command", required=True)
    for name, status, text in (
        ("ack", "acknowledged", "a person has seen the finding; it stays open"),
        ("ignore", "ignored", "the finding is not to be corrected"),
    ):
        command = exception_commands.add_parser(name, help=text)
        command.add_argument("ids", nargs="+", metavar="ID", help="exception ids")
        command.add_argument("--reason", required=True)
        command.add_argument("--by", default="", help="who decides (default: $USER)")
        command.set_defaults(run=_run_decide, status=status)


def _run_decide(args: argparse.Namespace) -> int:
    import getpass

    from revops_pipelines.ledger import Ledger, LedgerError
    from revops_pipelines.settings import Settings

    who = args.by or getpass.getuser()
    with Ledger(Settings.from_env().ledger_url) as ledger:
        try:
            for exception_id in args.ids:
                ledger.decide(exception_id, args.status, reason=args.reason, by=who)
        except LedgerError as error:
            print(f"revops exceptions: {error}", file=sys.stderr)
            return 2
    print(f"{args.status}: {', '.join(args.ids)} (by {who}); applied at the next reconciliation")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="the whole loop through a real Dagster daemon: detect, correct, live changes "
        "as webhooks, re-verify, report",
    )
    demo.add_argument(
        "--state", type=Path, help="serve this state directory (SOURCES.md) instead of a new one"
    )
    demo.add_argument("--out", type=Path, help="where the report and exports go")
    demo.add_argument("--dry-run", action="store_true", help="plan corrections, push nothing")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--months", type=int, default=12)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(run=_run_demo)

    dev = commands.add_parser(
        "dev", help="the Dagster UI on the workspace, over the sandbox unless real URLs are set"
    )
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(run=_run_dev)

    trace = commands.add_parser(
        "trace", help="the lifecycle of one record or correlation id, with its open findings"
    )
    trace.add_argument("id", help="a CRM, billing or ERP id, or a correlation id")
    trace.set_defaults(run=_run_trace)

    _add_sandbox(commands)
    _add_ledger(commands)
    _add_exceptions(commands)
    _add_webhooks(commands)
    _add_corrections(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
