"""podctl's command line (DESIGN §3): parses flags into a Config and hands off.

Exit codes: 0 converged or done, 1 changes pending or pods not running, 2 some hosts
failed or were unreachable, 3 usage or validation error (nothing changed), 4 another
run holds the lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .config import Config, default_home
from .errors import PodctlError


class _Commands:
    """orchestrator.commands, imported on first use: `--help` and `keeper` need none of it."""

    def __getattr__(self, name: str):
        from . import commands as module

        return getattr(module, name)


commands = _Commands()


class Ctx:
    def __init__(self, config: Config, quiet: bool):
        self.config = config
        self.quiet = quiet


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-i", "--inventory", type=click.Path(path_type=Path), envvar="PODCTL_INVENTORY",
              help="Inventory file (Ansible YAML/INI or vagrant ssh-config). Default: the lab's.")
@click.option("--home", type=click.Path(path_type=Path), envvar="PODCTL_HOME",
              help="State directory (state.db, images/, lab/). Default: ~/.podctl")
@click.option("-q", "--quiet", is_flag=True, help="Print only problems (for cron).")
@click.version_option(package_name="podctl")
@click.pass_context
def main_group(ctx: click.Context, inventory: Path | None, home: Path | None, quiet: bool) -> None:
    """podctl: Kubernetes-style pods on plain Linux hosts, over SSH, with nothing installed."""
    config = Config(home=(home.expanduser() if home else default_home()).absolute(),
                    inventory=inventory.expanduser().absolute() if inventory else None)
    ctx.obj = Ctx(config, quiet)


# ---------------------------------------------------------------- lab


@main_group.group()
def lab() -> None:
    """A local lab: hosts made of network namespaces, each running real sshd."""


@lab.command("up")
@click.option("--hosts", "count", type=click.IntRange(1, 250), default=3, show_default=True)
@pass_ctx
def lab_up(ctx: Ctx, count: int) -> None:
    """Start COUNT local SSH hosts and import the busybox image; prints the inventory path."""
    path = commands.lab_up(ctx.config, count, quiet=ctx.quiet)
    click.echo(str(path))


@lab.command("down")
@pass_ctx
def lab_down(ctx: Ctx) -> None:
    """Remove every namespace, link, mount, cgroup, process and file of the lab."""
    commands.lab_down(ctx.config)
    if not ctx.quiet:
        click.echo("lab removed")


@lab.command("status")
@pass_ctx
def lab_status(ctx: Ctx) -> None:
    """List the lab's hosts."""
    commands.print_table(*commands.lab_status_table(ctx.config))


# ---------------------------------------------------------------- objects


@main_group.command()
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(path_type=Path), help="Manifest file or directory ('-' for stdin).")
@click.option("--no-reconcile", is_flag=True, help="Only record the objects.")
@pass_ctx
def apply(ctx: Ctx, files: tuple[Path, ...], no_reconcile: bool) -> None:
    """Record desired objects, then reconcile."""
    code = commands.apply(ctx.config, list(files), reconcile=not no_reconcile, quiet=ctx.quiet)
    sys.exit(code)


@main_group.command()
@click.argument("kind", required=False)
@click.argument("name", required=False)
@click.option("-f", "--filename", "files", multiple=True, type=click.Path(path_type=Path))
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--no-reconcile", is_flag=True, help="Only record the deletion.")
@pass_ctx
def delete(ctx: Ctx, kind: str | None, name: str | None, files: tuple[Path, ...], namespace: str,
           no_reconcile: bool) -> None:
    """Delete objects: `delete pod|deployment|job|daemonset|statefulset NAME` or `delete -f FILE`."""
    if files and (kind or name):
        raise click.UsageError("give either KIND NAME or -f FILE, not both")
    if not files and not kind:
        raise click.UsageError("usage: podctl delete KIND NAME | podctl delete -f FILE")
    code = commands.delete(ctx.config, kind, name, list(files), namespace,
                           reconcile=not no_reconcile, quiet=ctx.quiet)
    sys.exit(code)


@main_group.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml", "name"]), default=None)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@pass_ctx
def get(ctx: Ctx, kind: str, name: str | None, output: str | None, namespace: str, all_namespaces: bool) -> None:
    """Show objects: `get pods|deployments|jobs|daemonsets|statefulsets [NAME] [-o wide|json|yaml]`, `get hosts`."""
    kind, name = commands.split_target(kind, name)
    ns = None if all_namespaces else namespace
    if kind == "hosts":
        code = commands.hosts(ctx.config, output)
    elif kind == "pods":
        code = commands.get_pods(ctx.config, name, ns, output)
    elif kind in ("configmaps", "secrets"):
        from .configviews import get_config
        with commands.open_store(ctx.config) as store:
            code = get_config(store, kind, name, ns, output, commands.print_table)
    else:
        code = commands.get_workloads(ctx.config, kind, name, ns, output)
    sys.exit(code)


@main_group.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@pass_ctx
def describe(ctx: Ctx, kind: str, name: str, namespace: str) -> None:
    """Describe a pod (spec, host and why, container states, events), a ConfigMap or
    Secret (never its values), or a host (node IP, pod CIDR, its pod network)."""
    plural = commands.normalize_kind(kind)
    if plural in ("configmaps", "secrets"):
        from .configviews import describe_config
        with commands.open_store(ctx.config) as store:
            sys.exit(describe_config(store, plural, name, namespace))
    if plural == "hosts":
        sys.exit(commands.describe_host(ctx.config, name))
    if plural != "pods":
        raise click.UsageError(f"describe supports pods, hosts, configmaps and secrets, not {kind!r}")
    sys.exit(commands.describe_pod(ctx.config, name, namespace))


@main_group.command()
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml"]), default=None)
@pass_ctx
def hosts(ctx: Ctx, output: str | None) -> None:
    """Host table: reachable, capacity, allocated, pods."""
    sys.exit(commands.hosts(ctx.config, output))


@main_group.command()
@click.argument("target", required=False)
@click.option("-c", "--container")
@click.option("-l", "--selector", help="Pods with these labels (app=x,tier in (a,b)); lines merged in time order.")
@click.option("-f", "--follow", is_flag=True)
@click.option("-p", "--previous", is_flag=True, help="The previous (restarted) instance's log.")
@click.option("--timestamps", is_flag=True, help="Each line's time (RFC3339) before it.")
@click.option("--tail", type=int, default=-1, help="Lines from the end (-1: all).")
@click.option("--since", help="Only lines newer than this duration (5s, 2m, 3h).")
@click.option("--all-containers", is_flag=True, help="Every container of the pod(s), init and ephemeral too.")
@click.option("--prefix/--no-prefix", default=None, help="[pod/NAME/CONTAINER] before each line (default: with -l).")
@click.option("--max-log-requests", type=int, default=5, show_default=True,
              help="Concurrent log streams (with -l).")
@click.option("-n", "--namespace", default="default", show_default=True)
@pass_ctx
def logs(ctx: Ctx, target: str | None, container: str | None, selector: str | None, follow: bool, previous: bool,
         timestamps: bool, tail: int, since: str | None, all_containers: bool, prefix: bool | None,
         max_log_requests: int, namespace: str) -> None:
    """Print container logs: `logs POD|TYPE/NAME [-c C]` or `logs -l app=x`."""
    from .logfetch import logs as fetch_logs

    sys.exit(fetch_logs(ctx.config, target, namespace, container, selector=selector, follow=follow,
                        previous=previous, timestamps=timestamps, tail=tail, since=since,
                        all_containers=all_containers, prefix=prefix, max_log_requests=max_log_requests))


@main_group.command(context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("--image", required=True, help="The debug container's image (from `podctl image ls`).")
@click.option("--target", help="Share this container's process namespace.")
@click.option("-c", "--container", "name", help="The debug container's name (default debugger-xxxxx).")
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Attach: pass stdin, wait for the container.")
@click.option("-t", "--tty", is_flag=True, help="Accepted for kubectl habits; no tty is allocated.")
@click.option("--image-pull-policy", type=click.Choice(["Always", "IfNotPresent", "Never"]), default=None)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def debug(ctx: Ctx, pod: str, image: str, target: str | None, name: str | None, interactive: bool, tty: bool,
          image_pull_policy: str | None, namespace: str, command: tuple[str, ...]) -> None:
    """Add an ephemeral container to a running pod: `debug POD --image IMG [--target C] [-i] -- CMD`."""
    from .debug import debug as run_debug

    sys.exit(run_debug(ctx.config, pod, namespace, image, target, name, interactive, tty, image_pull_policy,
                       list(command)))


@main_group.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("-c", "--container")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Accepted for kubectl habits; no tty is allocated.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def exec_(ctx: Ctx, pod: str, container: str | None, namespace: str, interactive: bool, tty: bool,
          command: tuple[str, ...]) -> None:
    """Run a command in a container: `podctl exec POD [-c C] -- CMD ARGS...`."""
    sys.exit(commands.exec_in(ctx.config, pod, namespace, container, list(command), interactive))


@main_group.command()
@click.argument("action", type=click.Choice(["status", "undo", "history"]))
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--to-revision", type=int, default=None, help="undo: the revision to go back to.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="status: seconds to wait.")
@click.option("-w", "--watch/--no-watch", default=True, show_default=True,
              help="status: reconcile and wait until the rollout is done.")
@pass_ctx
def rollout(ctx: Ctx, action: str, target: str, namespace: str, to_revision: int | None,
            timeout: float, watch: bool) -> None:
    """Deployment rollouts: `rollout status|undo|history deployment/NAME`."""
    sys.exit(commands.rollout(ctx.config, action, target, namespace, to_revision, timeout, watch))


@main_group.command()
@click.option("-v", "--verbose", is_flag=True, help="Placement reasons and scores.")
@pass_ctx
def plan(ctx: Ctx, verbose: bool) -> None:
    """What reconcile would do, with reasons. Changes nothing."""
    sys.exit(commands.plan(ctx.config, verbose))


@main_group.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON run report on stdout.")
@click.option("--watch", is_flag=True, help="Reconcile in a loop (connections kept open, short health grace).")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=1.0, show_default=True,
              help="Seconds between the starts of two runs with --watch.")
@click.option("--runs", type=click.IntRange(1), default=None, help="With --watch: stop after this many runs.")
@click.option("--for", "duration", type=click.FloatRange(0), default=None,
              help="With --watch: stop after this many seconds.")
@pass_ctx
def reconcile(ctx: Ctx, as_json: bool, watch: bool, interval: float, runs: int | None,
              duration: float | None) -> None:
    """One reconcile run (for cron): probe, place, create and delete, report.

    With --watch, the same run every --interval seconds until Ctrl-C / SIGTERM: a host
    failure is noticed and its pods re-placed within seconds."""
    if watch:
        if as_json:
            raise click.UsageError("--json is for one run; --watch prints what each run changes")
        from .watch import run_watch

        sys.exit(run_watch(ctx.config, interval, ctx.quiet, runs, duration))
    if runs is not None or duration is not None:
        raise click.UsageError("--runs and --for go with --watch")
    sys.exit(commands.reconcile(ctx.config, quiet=ctx.quiet, as_json=as_json))


# ---------------------------------------------------------------- hosts: cordon, drain, fence


@main_group.command()
@click.argument("host")
@pass_ctx
def cordon(ctx: Ctx, host: str) -> None:
    """No new pods on HOST; what runs there stays."""
    from . import hostops

    click.echo(hostops.cordon(ctx.config, host, True))


@main_group.command()
@click.argument("host")
@pass_ctx
def uncordon(ctx: Ctx, host: str) -> None:
    """HOST takes new pods again."""
    from . import hostops

    click.echo(hostops.cordon(ctx.config, host, False))


@main_group.command()
@click.argument("host")
@click.option("--no-reconcile", is_flag=True, help="Only record; the next reconcile moves the pods.")
@pass_ctx
def drain(ctx: Ctx, host: str, no_reconcile: bool) -> None:
    """Cordon HOST and move its pods elsewhere (DaemonSet pods stay)."""
    from . import hostops

    for line in hostops.drain(ctx.config, host):
        click.echo(line)
    if not no_reconcile:
        sys.exit(commands.reconcile(ctx.config, quiet=True, as_json=False))


@main_group.command()
@click.argument("host")
@click.option("--reason", default="confirmed down by an operator", show_default=True)
@pass_ctx
def fence(ctx: Ctx, host: str, reason: str) -> None:
    """Confirm HOST is down, so its StatefulSet pods may be replaced elsewhere.

    Refused while HOST answers: fencing a live host would let two copies run."""
    from . import hostops

    click.echo(hostops.fence(ctx.config, host, reason))


# ---------------------------------------------------------------- keeper


@main_group.group()
def keeper() -> None:
    """The SSH connection keeper: host connections kept open between runs."""


@keeper.command("status")
@click.option("-o", "--output", type=click.Choice(["json"]), default=None)
@pass_ctx
def keeper_status(ctx: Ctx, output: str | None) -> None:
    """Is a keeper running: its connections and counters (exit 1: none running)."""
    from .transport import keeper_client

    sys.exit(keeper_client.status_command(ctx.config, output))


@keeper.command("stop")
@pass_ctx
def keeper_stop(ctx: Ctx) -> None:
    """Stop the keeper (after the requests it started); the next run starts a new one."""
    from .transport import keeper_client

    sys.exit(keeper_client.stop_command(ctx.config, quiet=ctx.quiet))


# ---------------------------------------------------------------- images


@main_group.group()
def image() -> None:
    """The image store: local imports (pinned names) and registry pulls."""


@image.command("import")
@click.argument("ref")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--entrypoint", help="JSON list or a shell-split string.")
@click.option("--cmd", help="JSON list or a shell-split string.")
@click.option("--env", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--workdir")
@pass_ctx
def image_import(ctx: Ctx, ref: str, source: Path, entrypoint: str | None, cmd: str | None,
                 env: tuple[str, ...], workdir: str | None) -> None:
    """Import a rootfs dir/tarball, a docker-save archive or an OCI layout/archive."""
    img = commands.image_import(ctx.config, ref, source, entrypoint, cmd, list(env), workdir)
    click.echo(f"{img.ref} sha256:{img.digest}")


@image.command("ls")
@pass_ctx
def image_ls(ctx: Ctx) -> None:
    """List images in the local store (imported and pulled)."""
    commands.print_table(*commands.image_table(ctx.config))


@image.command("standins")
@pass_ctx
def image_standins(ctx: Ctx) -> None:
    """Import busybox-static stand-ins under the names the Kubernetes docs' examples use
    (busybox:1.28, alpine, debian, registry.k8s.io/busybox, nginx = busybox httpd)."""
    for img in commands.image_standins(ctx.config):
        click.echo(f"{img.ref} sha256:{img.digest}")


@image.command("pull")
@click.argument("ref")
@click.option("--platform", help="os/arch[/variant] to pick from a multi-platform image "
                                 "(default: linux and this machine's architecture).")
@pass_ctx
def image_pull(ctx: Ctx, ref: str, platform: str | None) -> None:
    """Pull REF from its registry into the store (pre-pull; pods pull by themselves)."""
    img, changed = commands.image_pull(ctx.config, ref, platform)
    click.echo(f"{img.ref} sha256:{img.digest}" + ("" if changed else " (up to date)"))


@image.command("rm")
@click.argument("ref")
@pass_ctx
def image_rm(ctx: Ctx, ref: str) -> None:
    """Remove REF from the store (hosts drop their copy once no pod uses it)."""
    from .images import ImageStore

    ImageStore(ctx.config.images_dir).remove(ref)
    click.echo(f"removed {ref}")


def main() -> None:
    try:
        main_group.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(3)
    except PodctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
