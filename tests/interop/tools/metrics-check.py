#!/usr/bin/env python3
"""Checks a /metrics scrape with a real OpenMetrics parser (Debian's python3-prometheus-client).

Usage: metrics-check.py FILE CHECK...

The whole file must parse (prometheus_client.openmetrics.parser, which also insists on the
final "# EOF"). Each CHECK is one of
    SAMPLE{label=value,...} OP NUMBER   the sum of the samples named SAMPLE whose labels include
                                        the given ones (none given: all of them) compared with
                                        NUMBER; OP is one of == != >= > <= <. No such sample
                                        fails the check.
    type:FAMILY=TYPE                    the family is declared with that type (counter, gauge,
                                        histogram, info …)
    absent:SAMPLE{label=value,...}      no sample matches
A label value with a comma goes in double quotes (features="ikev2,ikev1"); none may hold
braces. Prints every check with
the value found; exits 1 when one fails, 2 when the file does not parse.
"""
import operator
import re
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
CHECK = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s*(==|!=|>=|<=|>|<)\s*(\S+)$")
SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?$")


LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(?:"([^"]*)"|([^,"]*))\s*(?:,|$)')


def parse_labels(text):
    labels = {}
    for m in LABEL.finditer(text or ""):
        labels[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3).strip()
    return labels


def matching(samples, name, labels):
    return [
        s for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    text = open(sys.argv[1], encoding="utf-8").read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        print(f"    the OpenMetrics parser rejects the scrape: {e}")
        return 2
    types = {f.name: f.type for f in families}
    samples = [s for f in families for s in f.samples]
    failed = 0
    for check in sys.argv[2:]:
        ok, found = False, None
        if check.startswith("type:"):
            family, _, want = check[5:].partition("=")
            found = types.get(family)
            ok = found == want
        elif check.startswith("absent:"):
            m = SELECTOR.match(check[7:])
            if m:
                found = len(matching(samples, m.group(1), parse_labels(m.group(3))))
                ok = found == 0
        else:
            m = CHECK.match(check)
            if m:
                name, labels, op, want = m.group(1), parse_labels(m.group(3)), m.group(4), m.group(5)
                hits = matching(samples, name, labels)
                if hits:
                    found = sum(s.value for s in hits)
                    ok = OPS[op](found, float(want))
                else:
                    found = "no such sample"
        if found is None and not ok:
            found = "unreadable check"
        print(f"    {'ok ' if ok else 'BAD'} {check}   (found {found})")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
