"""``nas serve``: the HTTP service over the store (the only command that imports ``services``)."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from nas.admission import SERVICE_MAX_MACS, SERVICE_MAX_PARAMS
from nas.cli_search import DEFAULT_STORE_ENV, _store
from nas.core.extras import require_extra


def cmd_serve(args: argparse.Namespace) -> None:
    # imported here so that other commands start without loading the web stack
    require_extra("serve", "nas serve")
    import uvicorn

    from nas.admission import service_policy
    from nas.core.limits import InputLimits
    from services.app import Quotas, ServiceConfig, create_app
    from services.auth import AuthSetupError, is_loopback, resolve_token, served_names
    from services.server import ConnectionLimits, server_config

    loopback = is_loopback(args.host)
    if args.no_auth and not loopback:
        raise ValueError(
            f"--no-auth: refused on {args.host}, which other machines can reach; serve 127.0.0.1 or drop --no-auth"
        )
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise ValueError("--ssl-certfile and --ssl-keyfile: give both or neither")
    limits = ConnectionLimits(
        max_connections=args.max_connections, max_per_client=args.max_connections_per_client,
        head_timeout_s=args.head_timeout, body_timeout_s=args.body_timeout,
    )  # fmt: skip
    _check_port_free(args.host, args.port)
    store = _store(args)
    try:
        source = None if args.no_auth else resolve_token(args.token, args.token_file, store.connection_url)
    except AuthSetupError as exc:
        raise ValueError(str(exc)) from None
    policy = service_policy(args.data_root or [], InputLimits(max_bytes=args.max_body_bytes),
                            max_params=args.max_params, max_macs=args.max_macs)  # fmt: skip
    if args.max_active_jobs < 1 or args.max_evaluations < 1:
        raise ValueError("--max-active-jobs and --max-evaluations must be >= 1")
    quotas = Quotas(max_active_jobs=args.max_active_jobs, max_evaluations=args.max_evaluations)
    hosts = tuple(args.allowed_host) if args.allowed_host else served_names(args.host)
    config = ServiceConfig(
        token=source.token if source else None, policy=policy, threads=args.jobs, allowed_hosts=hosts,
        cors_origins=tuple(args.cors_origin or ()), body_timeout_s=limits.body_timeout_s, quotas=quotas,
    )  # fmt: skip
    app = create_app(store, config)
    scheme = "https" if args.ssl_certfile else "http"
    say = functools.partial(print, file=sys.stderr)
    say(f"serving {store.safe_url} on {scheme}://{args.host}:{args.port}/ (Ctrl-C stops)")
    if source is None:
        say("authentication is OFF (--no-auth): any process on this machine can submit jobs")
    elif source.created:
        say(f"a new access token was written to {source.where} (readable only by you); the page asks for it")
    else:
        say(f"access token: from {source.where}")
    say(f"Host names served: {', '.join(hosts)} (--allowed-host NAME adds a name clients use)")
    roots = ", ".join(str(r) for r in policy.data_roots or ()) or "none (specs may name no files)"
    say(f"data roots: {roots}")
    if not loopback and not args.ssl_certfile:
        say(
            f"warning: serving {args.host} without TLS: the token and results cross the network in clear text; "
            "pass --ssl-certfile/--ssl-keyfile or put a TLS proxy in front"
        )
    uvicorn.Server(
        server_config(app, args.host, args.port, limits, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    ).run()


def _check_port_free(host: str, port: int) -> None:
    """Refuses a port another process listens on before anything is printed or created."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ValueError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); another process uses it, "
                "choose another --port"
            ) from None


def add_serve_command(sub: Any) -> None:
    p = sub.add_parser("serve", help="HTTP API and web page over the store; runs submitted jobs")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--jobs", type=int, default=1, help="jobs run at the same time")
    p.add_argument("--token", help="bearer token clients must send (default: $NAS_SERVICE_TOKEN, else a token file)")
    p.add_argument(
        "--token-file",
        help="where the token is kept; created (mode 600) with a random token if absent "
        "(default: <db>.token beside a SQLite store, else ~/.config/hwnas/service.token)",
    )
    p.add_argument("--no-auth", action="store_true", help="no token (allowed only on a loopback --host)")
    p.add_argument(
        "--data-root",
        action="append",
        metavar="DIR",
        help="folder that files named in submitted specs must lie in (repeatable; default: none, "
        "so specs may name no files)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="largest request body in bytes (default: %(default)s, 1 MiB)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        help="Host header values accepted (repeatable; default: the --host, or the loopback names)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="another origin whose pages may call the API (repeatable; default: none)",
    )
    p.add_argument(
        "--max-active-jobs", type=int, default=20, help="jobs queued or running at once; more get 429 (default: 20)"
    )
    p.add_argument(
        "--max-evaluations", type=int, default=100_000,
        help="largest evaluation budget of a submitted job (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-params", type=float, default=SERVICE_MAX_PARAMS,
        help="largest parameter count of a space's largest subnet (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-macs", type=float, default=SERVICE_MAX_MACS,
        help="largest MACs per sample of a space's largest subnet (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--ssl-certfile", help="TLS certificate (PEM), with --ssl-keyfile")
    p.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    p.add_argument(
        "--max-connections", type=int, default=200,
        help="open connections in all; more are closed at once (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-connections-per-client", type=int, default=20,
        help="open connections from one address; more are closed at once (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--head-timeout", type=float, default=10.0, metavar="SECONDS",
        help="a request's line and headers must arrive within this (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--body-timeout", type=float, default=30.0, metavar="SECONDS",
        help="a request's body must arrive within this after its headers; 408 after (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--store", help=f"database URL (default: ${DEFAULT_STORE_ENV} or sqlite:///runs/nas.db)")
    p.set_defaults(func=cmd_serve)
