"""``antrean``: the technician's command line (names fixed by docs/config.md).

Every command either does what it says and exits 0, or prints one clear line on stderr
(what went wrong, where, what to do) and exits non-zero: 2 for a usage or config mistake,
1 for an operation that failed. ``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from appliance import __version__
from appliance.errors import AntreanError, ConfigError

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _counter(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"counter {text!r} is not a number") from None
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"counter {value} is out of range 1-999")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="antrean", description="Antrean lobby appliance for passport offices.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $ANTREAN_CONFIG, else /etc/antrean/antrean.toml)")
    p.add_argument("--version", action="version", version=f"antrean {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("scanner", help="run the scanner service until SIGTERM")
    sub.add_parser("printer", help="run the slip printer service until SIGTERM")
    d = sub.add_parser("display", help="run the call screen until SIGTERM")
    d.add_argument("--snapshot", metavar="OUT.png", help="render the current state once, exit")
    d.add_argument("--size", metavar="WxH", help="screen size for --snapshot (e.g. 1920x1080)")
    s = sub.add_parser("sync", help="run the sync service until SIGTERM")
    s.add_argument("--once", action="store_true", help="one pull and one upload round, then exit")

    sc = sub.add_parser("scan", help="run one payload through the check-in path")
    sc.add_argument("payload", metavar="PAYLOAD")
    sc.add_argument("--json", action="store_true")
    for name, text in (("call", "call the next applicant to a counter"),
                       ("recall", "call a counter's current ticket again"),
                       ("no-show", "mark a counter's current ticket as not come")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--counter", type=_counter, required=True, metavar="N")
        c.add_argument("--json", action="store_true")

    pr = sub.add_parser("print", help="reprint a queue slip (through the printer service)")
    pr.add_argument("--ticket", required=True, metavar="TICKET", help="today's ticket, e.g. A012")
    pr.add_argument("--wait", type=float, default=20.0, metavar="SECONDS",
                    help="how long to wait for the slip to come out (default 20)")
    pr.add_argument("--json", action="store_true")

    sch = sub.add_parser("schedule", help="import or sign schedule files")
    schsub = sch.add_subparsers(dest="schedule_command", metavar="ACTION", parser_class=_Parser)
    schsub.required = True
    imp = schsub.add_parser("import", help="verify and import FILE (signature in FILE.sig)")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--json", action="store_true")
    sign = schsub.add_parser("sign", help="write FILE.sig with a signing key")
    sign.add_argument("file", metavar="FILE")
    sign.add_argument("--key", required=True, metavar="KEYFILE")

    kg = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    kg.add_argument("--out", required=True, metavar="KEYFILE")
    kg.add_argument("--keyid", help="key id (default: k<year><random letters>)")
    kg.add_argument("--json", action="store_true")

    ob = sub.add_parser("outbox", help="act on the events waiting for the central server")
    obsub = ob.add_subparsers(dest="outbox_command", metavar="ACTION", parser_class=_Parser)
    obsub.required = True
    rq = obsub.add_parser("requeue", help="send dead events again (after fixing the cause)")
    rq.add_argument("ids", nargs="*", metavar="ID", help="event ids (see `antrean status`)")
    rq.add_argument("--all", action="store_true", help="every dead event")
    rq.add_argument("--json", action="store_true")

    st = sub.add_parser("status", help="the appliance at a glance")
    st.add_argument("--json", action="store_true")

    dr = sub.add_parser("doctor", help="check this installation and say what to fix")
    dr.add_argument("--json", action="store_true")
    dr.add_argument("--print-test", action="store_true",
                    help="also print a test page on the configured printer")

    dv = sub.add_parser("devserver", help="run the reference central server (development tool)",
                        add_help=False)
    dv.add_argument("devserver_args", nargs=argparse.REMAINDER)

    dm = sub.add_parser("demo", help="run the demo (development tool; see `make demo`)")
    dm.add_argument("--out", default="demo-out", metavar="DIR",
                    help="folder for the demo's config, database and snapshots")
    dm.add_argument("--seconds", type=float, default=0,
                    help="stop after this many seconds (default: until Ctrl-C)")
    dm.add_argument("--headless", action="store_true", help="never open a window")
    dm.add_argument("--offline", action="store_true",
                    help="a quick lobby day through the CLI paths, no services or network")
    return p


def _print(args, data: dict, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(human)


def _open(config):
    from appliance.store import Store

    return Store(config.storage.path)


def cmd_scan(args, config) -> int:
    from appliance.checkin import CheckinDesk

    payload = os.fsencode(args.payload)
    with _open(config) as store:
        desk = CheckinDesk(store, config)
        result = desk.scan(payload)
        desk.settle_unreadable(force=True)   # no service may be running to report it later
    data = result.as_json()
    human = f"{result.verdict}: {result.message_id} / {result.message_en}"
    _print(args, data, human)
    return 0


def cmd_counter(args, config) -> int:
    from appliance.call_queue import CallQueue

    with _open(config) as store:
        queue = CallQueue(store, config)
        if args.command == "call":
            call = queue.call_next(args.counter)
        elif args.command == "recall":
            call = queue.recall(args.counter)
        else:
            call = queue.no_show(args.counter)
    if call is None:
        _print(args, {"ticket": None, "counter": args.counter},
               f"nobody is waiting for counter {args.counter}")
    else:
        words = {"call": "called to", "recall": "called again to", "no_show": "no-show at"}
        _print(args, call.as_json(), f"{call.ticket} {words[call.kind]} {call.counter_name}")
    return 0


def cmd_print(args, config) -> int:
    import time

    from appliance.print_queue import STATE_KEY, PrintQueue

    if config.printer.kind == "none":
        raise ConfigError(f"{config.path}: no printer configured (printer.kind = \"none\"); "
                          "see docs/printer.md")
    with _open(config) as store:
        queue = PrintQueue(store, config)
        job = queue.request_reprint(args.ticket)
        ticket = args.ticket.strip().upper()
        deadline = time.monotonic() + max(0.0, args.wait)
        state, error = queue.job_state(job)
        while state in ("pending", "printing") and time.monotonic() < deadline:
            time.sleep(0.1)
            state, error = queue.job_state(job)
        printer = store.get_kv(STATE_KEY) or {}
    data = {"ticket": ticket, "job": job, "state": state, "error": error,
            "printer": {"state": printer.get("state"), "detail": printer.get("detail")}}
    if state == "printed":
        _print(args, data, f"reprinted the slip of {ticket}")
        return 0
    why = error or printer.get("detail") or "the printer service has not picked it up; is it " \
        "running? (systemctl status antrean-printer)"
    if state == "pending":
        message = (f"the reprint of {ticket} is queued but not printed yet: {why}; it stays "
                   f"queued for {config.printer.max_age_minutes} minutes")
    else:
        message = f"the reprint of {ticket} was not printed ({state}): {why}"
    if args.json:
        _print(args, data, "")
    else:
        print(f"antrean: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def cmd_schedule(args, config) -> int:
    from appliance.keys import load_key_file
    from appliance.schedule import read_signed_file, save_schedule, verify_schedule

    if args.schedule_command == "sign":
        key = load_key_file(args.key)
        try:
            with open(args.file, "rb") as f:
                body = f.read()
        except OSError as e:
            raise AntreanError(f"cannot read {args.file}: {e.strerror}") from None
        tmp = args.file + ".sig.tmp"
        with open(tmp, "w") as f:
            f.write(key.sign_header(body) + "\n")
        os.replace(tmp, args.file + ".sig")
        print(f"wrote {args.file}.sig (key {key.keyid})", file=sys.stderr)
        return 0
    config = config()
    body, sig = read_signed_file(args.file)
    schedule = verify_schedule(body, sig, config)
    with _open(config) as store:
        changed = save_schedule(store, schedule, source="import", etag=None)
    data = {"date": schedule.date, "version": schedule.version,
            "appointments": len(schedule.appointments), "changed": changed}
    human = (f"imported schedule {schedule.date} version {schedule.version}: "
             f"{len(schedule.appointments)} appointments"
             + ("" if changed else " (already cached, nothing changed)"))
    _print(args, data, human)
    return 0


def cmd_keygen(args) -> int:
    import secrets
    import string
    from datetime import date

    from appliance.keys import generate_key, write_key_file

    keyid = args.keyid or f"k{date.today().year}" + "".join(
        secrets.choice(string.ascii_lowercase) for _ in range(4))
    key = generate_key(keyid)
    write_key_file(key, args.out)
    _print(args, {"keyid": key.keyid, "public_key": key.public_b64},
           f"keyid = {key.keyid}\npublic_key = {key.public_b64}\n"
           f"Add to [trust] keys: {key.keyid} = \"{key.public_b64}\"")
    return 0


def cmd_outbox(args, config) -> int:
    from appliance.outbox import requeue_dead

    with _open(config) as store:
        ids = requeue_dead(store, None if args.all else args.ids)
    human = (f"requeued {len(ids)} dead event{'s' if len(ids) != 1 else ''}; the sync "
             "service sends them with its next upload" if ids else "no dead events")
    _print(args, {"requeued": len(ids), "ids": ids}, human)
    return 0


def cmd_status(args, config) -> int:
    from appliance.status import collect_status, format_status

    data = collect_status(config)
    _print(args, data, format_status(data))
    return 0


def cmd_doctor(args) -> int:
    from appliance.doctor import as_json, format_checks, run_checks

    checks = run_checks(args.config, print_test=args.print_test)
    data = as_json(checks)
    _print(args, data, format_checks(checks))
    return 0 if data["ok"] else EXIT_FAILED


def _run_service(args, config) -> int:
    if args.command == "scanner":
        from appliance.scanner_service import run

        return run(config)
    if args.command == "printer":
        from appliance.printer_service import run

        return run(config)
    if args.command == "display":
        from display.service import run

        return run(config, snapshot=args.snapshot, size=args.size)
    from sync.service import run

    return run(config, once=args.once)


def _dev_tool(command: str, what: str):
    """``devtools.<command>``, or None after one line on how to get it.

    The development tools are a distribution of their own that is never installed on a Pi,
    so on an appliance ``antrean devserver`` and ``antrean demo`` explain themselves instead.
    """
    import importlib

    module = f"devtools.{command}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        # Only a missing tool or its own package (aiohttp) means "not installed here".
        if e.name not in ("devtools", module, "aiohttp"):
            raise
    print(f"antrean {command}: {what} is a development tool, not installed on appliances; "
          "in a checkout run `make demo` or `pip install -e ./devtools`", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # The reference server has options of its own; everything after `devserver` is its.
    raw = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(raw)
    if args.command == "devserver":
        args.devserver_args = raw[raw.index("devserver") + 1:]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "outbox" and args.all == bool(args.ids):
        parser.error("outbox requeue takes either --all or event ids (`antrean status` "
                     "lists dead events)")
    logging.basicConfig(level=os.environ.get("ANTREAN_LOG_LEVEL", "INFO").upper(),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    def config():
        from appliance.config import load_config

        return load_config(args.config)

    try:
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "devserver":
            devserver = _dev_tool("devserver", "the reference server")
            if devserver is None:
                return EXIT_USAGE
            return devserver.main(args.devserver_args)
        if args.command == "doctor":
            return cmd_doctor(args)
        if args.command == "demo":
            demo = _dev_tool("demo", "the demo")
            if demo is None:
                return EXIT_USAGE
            return demo.run_demo(args)
        if args.command == "schedule":
            return cmd_schedule(args, config)
        cfg = config()
        if args.command == "scan":
            return cmd_scan(args, cfg)
        if args.command in ("call", "recall", "no-show"):
            return cmd_counter(args, cfg)
        if args.command == "status":
            return cmd_status(args, cfg)
        if args.command == "print":
            return cmd_print(args, cfg)
        if args.command == "outbox":
            return cmd_outbox(args, cfg)
        return _run_service(args, cfg)
    except ConfigError as e:
        print(f"antrean: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AntreanError as e:
        print(f"antrean: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as e:  # a bug: still one line, the traceback only on request
        if os.environ.get("ANTREAN_DEBUG"):
            raise
        print(f"antrean: internal error: {type(e).__name__}: {e}; run again with "
              "ANTREAN_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
