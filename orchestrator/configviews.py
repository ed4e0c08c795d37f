"""`get` and `describe` for ConfigMaps and Secrets, as kubectl prints them: tables show
counts, never values; `-o json|yaml` shows a Secret's data base64-encoded (as kubectl
does); `describe` shows a Secret's keys with their sizes only."""

from __future__ import annotations

import base64

import click

from .configobjects import shown_doc
from .views import age, as_output, rfc3339

PLURALS = {"configmaps": "ConfigMap", "secrets": "Secret"}


def _data_count(doc: dict) -> int:
    return len(doc.get("data") or {}) + len(doc.get("binaryData") or {})


def get_config(store, plural: str, name: str | None, namespace: str | None, output: str | None,
               print_table) -> int:
    kind = PLURALS[plural]
    rows = [o for o in store.list_objects(kind=kind, namespace=namespace) if name is None or o.name == name]
    if name and not rows:
        click.echo(f'Error from server (NotFound): {plural} "{name}" not found', err=True)
        return 1
    if output in ("json", "yaml"):
        items = [shown_doc(o.doc, o.uid, rfc3339(o.created_at)) for o in rows]
        click.echo(as_output(items, bool(name), output))
        return 0
    if output == "name":
        for o in rows:
            click.echo(f"{kind.lower()}/{o.name}")
        return 0
    if not rows:
        click.echo("No resources found", err=True)
        return 0
    if kind == "ConfigMap":
        print_table(["NAME", "DATA", "AGE"], [[o.name, str(_data_count(o.doc)), age(o.created_at)] for o in rows])
    else:
        print_table(["NAME", "TYPE", "DATA", "AGE"],
                    [[o.name, o.doc.get("type") or "Opaque", str(_data_count(o.doc)), age(o.created_at)]
                     for o in rows])
    return 0


def describe_config(store, plural: str, name: str, namespace: str) -> int:
    kind = PLURALS[plural]
    o = store.get_object(kind, namespace, name)
    if o is None:
        click.echo(f'Error from server (NotFound): {plural} "{name}" not found', err=True)
        return 1
    md = o.doc.get("metadata") or {}
    out = [f"Name:         {o.name}", f"Namespace:    {o.namespace}",
           "Labels:       " + (", ".join(f"{k}={v}" for k, v in (md.get("labels") or {}).items()) or "<none>"),
           "Annotations:  " + (", ".join(f"{k}={v}" for k, v in (md.get("annotations") or {}).items()) or "<none>"),
           ""]
    if kind == "Secret":
        out += [f"Type:  {o.doc.get('type') or 'Opaque'}", "", "Data", "===="]
        for key, value in sorted((o.doc.get("data") or {}).items()):
            out.append(f"{key}:  {len(base64.b64decode(value))} bytes")
    else:
        out += ["Data", "===="]
        for key, value in sorted((o.doc.get("data") or {}).items()):
            out += [f"{key}:", "----", value, ""]
        out += ["", "BinaryData", "===="]
        for key, value in sorted((o.doc.get("binaryData") or {}).items()):
            out.append(f"{key}: {len(base64.b64decode(value))} bytes")
    if o.doc.get("immutable"):
        out.append("Immutable: true")
    click.echo("\n".join(out))
    return 0
