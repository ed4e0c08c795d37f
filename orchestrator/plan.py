"""What a reconcile will do, as plain data: `podctl plan` prints it, the executor runs it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Action:
    verb: str  # delete | sync-network | push-image | create | delete-image | forget
    host: str | None  # None for store-only actions (forget)
    uid: str = ""
    pod: str = ""  # namespace/name, "" for orphans nobody declared
    reason: str = ""
    digest: str = ""  # push-image, delete-image; sync-network: the network digest to apply

    def describe(self) -> str:
        target = self.pod or self.uid or self.digest[:12]
        where = f" on {self.host}" if self.host else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.verb} {target}{where}{why}"


# Order on a host: remove what must go (orphans first), set up the pod network (routes,
# masquerade, hostPorts: podnet.py), bring images, create, then drop unused images.
VERB_ORDER = {"delete": 0, "sync-network": 1, "push-image": 2, "create": 3, "delete-image": 4, "forget": 5}


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)  # unschedulable pods, skipped hosts

    @property
    def empty(self) -> bool:
        return not any(a.verb != "forget" for a in self.actions)

    def for_host(self, host: str) -> list[Action]:
        return [a for a in self.actions if a.host == host]

    def hosts(self) -> list[str]:
        return sorted({a.host for a in self.actions if a.host})

    def summary(self) -> str:
        counts = Counter(a.verb for a in self.actions if a.verb != "forget")
        if not counts:
            return "nothing to do"
        return ", ".join(f"{n} to {verb}" for verb, n in sorted(counts.items(), key=lambda kv: VERB_ORDER[kv[0]]))


def ordered(actions: list[Action]) -> tuple[Action, ...]:
    """Orphans first (whatever the host), then per host: deletes, pushes, creates."""

    def key(a: Action):
        orphan_first = 0 if (a.verb == "delete" and not a.pod) else 1
        return (orphan_first, a.host or "", VERB_ORDER[a.verb], a.pod, a.uid, a.digest)

    return tuple(sorted(actions, key=key))
