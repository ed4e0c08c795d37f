"""Kubernetes resource quantities: "500m" cpu, "128Mi" memory. Pure parsing."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
            "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity as an exact Decimal in base units."""
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 500m, 2, 128Mi, 1Gi)")
    if isinstance(value, (int, float)):
        text = repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 500m, 2, 128Mi, 1Gi)")
    m = _QUANTITY.match(text)
    if not m:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 500m, 2, 128Mi, 1Gi)")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise QuantityError(f"{value!r} is not a quantity") from exc
    if m.group(2):
        return number * (Decimal(10) ** int(m.group(2)[1:]))
    suffix = m.group(3) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL[suffix]


def parse_cpu(value: object) -> int:
    """CPU in millicores, rounded up like Kubernetes ("100m" -> 100, "0.5" -> 500, 2 -> 2000)."""
    q = parse_quantity(value) * 1000
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def parse_memory(value: object) -> int:
    """Memory in bytes, rounded up ("128Mi" -> 134217728, "1G" -> 10**9)."""
    q = parse_quantity(value)
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(n: int) -> str:
    """An exact quantity: "64Mi", "1536Ki", or plain bytes."""
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def display_memory(n: int) -> str:
    """For tables: exact when it can be ("64Mi"), else one decimal ("23.3Gi")."""
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)
