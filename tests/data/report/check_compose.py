#!/usr/bin/env python3
"""Structural check of driftpilot's packaging files, with the standard
library only (no Docker engine or compose plugin runs on the build machines).

Parses docker-compose.yml and the Grafana provisioning files with a small
parser for the YAML subset they use (block mappings and sequences, flow
sequences of scalars, quoted scalars, literal block scalars, anchors,
aliases and "<<" merges), cross-checks it against PyYAML when that happens to
be installed, and checks what `docker compose config` would not: every host
path mounted exists, every depends_on names a service, named volumes are
declared, ports are "HOST:CONTAINER", the driftpilot commands the services
run exist in src/cli/commands.def, Grafana's dashboard provider points where
compose mounts the dashboard, the datasource points at the prometheus
service, and the dashboard JSON parses.

usage: check_compose.py SOURCE_DIR      (exit 0: fine; 1: problems listed)
"""
import json
import os
import re
import sys


class YamlError(Exception):
    pass


def _scalar(text, anchors):
    t = text.strip()
    if t.startswith("*"):
        name = t[1:]
        if name not in anchors:
            raise YamlError("unknown alias *%s" % name)
        return anchors[name]
    if t.startswith('"'):
        if not t.endswith('"') or len(t) < 2:
            raise YamlError("unterminated string %s" % t)
        return json.loads(t)
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise YamlError("unterminated string %s" % t)
        return t[1:-1].replace("''", "'")
    if t.startswith("["):
        if not t.endswith("]"):
            raise YamlError("unterminated flow sequence %s" % t)
        inner = t[1:-1].strip()
        if not inner:
            return []
        items, cur, q = [], "", None
        for ch in inner:
            if q:
                cur += ch
                if ch == q:
                    q = None
            elif ch in "\"'":
                q = ch
                cur += ch
            elif ch == ",":
                items.append(cur)
                cur = ""
            else:
                cur += ch
        if q:
            raise YamlError("unterminated string in %s" % t)
        items.append(cur)
        return [_scalar(i, anchors) for i in items]
    if t in ("true", "false"):
        return t == "true"
    if t in ("null", "~", ""):
        return None
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    if re.fullmatch(r"-?\d+\.\d*", t):
        return float(t)
    return t


def _strip_comment(line):
    out, q = "", None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out += ch
    return out.rstrip()


def _depth(line):
    d, q = 0, None
    for ch in line:
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "[":
            d += 1
        elif ch == "]":
            d -= 1
    return d


def parse_yaml(text):
    raw = text.split("\n")
    for n, l in enumerate(raw, 1):
        if "\t" in l[: len(l) - len(l.lstrip())]:
            raise YamlError("line %d: tab in indentation" % n)
    lines = []  # (indent, content, lineno, rawline)
    n = 0
    while n < len(raw):
        l = raw[n]
        n += 1
        c = _strip_comment(l)
        if not c.strip():
            continue
        # a flow sequence may go on over several lines: join until balanced
        start = n
        while _depth(c) > 0 and n < len(raw):
            c += " " + _strip_comment(raw[n]).strip()
            n += 1
        if _depth(c) != 0:
            raise YamlError("line %d: unbalanced [ ]" % start)
        lines.append((len(c) - len(c.lstrip(" ")), c.strip(), start, l))
    anchors = {}
    pos = [0]

    def block_scalar(parent_indent):
        # literal block (|): every following line indented deeper, raw
        start_no = lines[pos[0] - 1][2]
        body, ind = [], None
        k = start_no  # raw index of the next line
        while k < len(raw):
            l = raw[k]
            if l.strip() and len(l) - len(l.lstrip(" ")) <= parent_indent:
                break
            if l.strip():
                li = len(l) - len(l.lstrip(" "))
                ind = li if ind is None else min(ind, li)
            body.append(l)
            k += 1
        while pos[0] < len(lines) and lines[pos[0]][2] <= k:
            pos[0] += 1
        while body and not body[-1].strip():
            body.pop()
        return "\n".join(b[ind or 0:] for b in body) + "\n"

    def value_after(rest, indent):
        anchor = None
        m = re.match(r"&([\w-]+)\s*(.*)$", rest)
        if m:
            anchor, rest = m.group(1), m.group(2)
        if rest in ("|", "|-"):
            v = block_scalar(indent)
        elif rest == "":
            if pos[0] < len(lines) and (lines[pos[0]][0] > indent or
                                        (lines[pos[0]][0] == indent and lines[pos[0]][1].startswith("- "))):
                v = node(lines[pos[0]][0])
            else:
                v = None
        else:
            v = _scalar(rest, anchors)
        if anchor:
            anchors[anchor] = v
        return v

    def node(indent):
        if lines[pos[0]][1].startswith("- ") or lines[pos[0]][1] == "-":
            out = []
            while pos[0] < len(lines) and lines[pos[0]][0] == indent and lines[pos[0]][1].startswith("-"):
                ind, c, n, _ = lines[pos[0]]
                rest = c[1:].strip()
                pos[0] += 1
                if re.match(r"^[\w.\-\"']+\s*:(\s|$)", rest) and not rest.startswith('"'):
                    # a mapping inside a sequence item: re-read it at its column
                    col = ind + (len(c) - len(rest))
                    pos[0] -= 1
                    lines[pos[0]] = (col, rest, n, lines[pos[0]][3])
                    out.append(node(col))
                else:
                    out.append(value_after(rest, ind))
            return out
        out, merged = {}, set()
        while pos[0] < len(lines) and lines[pos[0]][0] == indent:
            ind, c, n, _ = lines[pos[0]]
            m = re.match(r'^("(?:[^"\\]|\\.)*"|[^:]+?)\s*:(?:\s+(.*))?$', c)
            if not m:
                raise YamlError("line %d: expected 'key: value': %s" % (n, c))
            key = _scalar(m.group(1), anchors)
            rest = (m.group(2) or "").strip()
            pos[0] += 1
            v = value_after(rest, ind)
            if key == "<<":
                if not isinstance(v, dict):
                    raise YamlError("line %d: << needs a mapping" % n)
                for k2, v2 in v.items():
                    if k2 not in out:
                        out[k2] = v2
                        merged.add(k2)
                continue
            if key in out and key not in merged:
                raise YamlError("line %d: duplicate key %s" % (n, key))
            out[key] = v
            merged.discard(key)
        if pos[0] < len(lines) and lines[pos[0]][0] > indent:
            n = lines[pos[0]][2]
            raise YamlError("line %d: unexpected indentation" % n)
        return out

    if not lines:
        return None
    v = node(lines[0][0])
    if pos[0] != len(lines):
        raise YamlError("line %d: unexpected content" % lines[pos[0]][2])
    return v


def _resolve_merges(v):
    """PyYAML keeps '<<' resolved already; normalise both to plain data."""
    if isinstance(v, dict):
        return {k: _resolve_merges(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_resolve_merges(x) for x in v]
    return v


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    problems = []

    def load(rel):
        path = os.path.join(src, rel)
        try:
            with open(path) as f:
                text = f.read()
            data = parse_yaml(text)
        except (OSError, YamlError) as e:
            problems.append("%s: %s" % (rel, e))
            return None
        try:
            import yaml  # optional cross-check
            ref = yaml.safe_load(text)
            if _resolve_merges(ref) != data:
                problems.append("%s: own parser and PyYAML disagree" % rel)
        except ImportError:
            pass
        return data

    dc = load("docker-compose.yml")
    ds = load("deploy/grafana/provisioning/datasources/prometheus.yaml")
    dbp = load("deploy/grafana/provisioning/dashboards/driftpilot.yaml")
    if dc is None or ds is None or dbp is None:
        print("\n".join(problems))
        return 1

    services = dc.get("services") or {}
    for s in ("init", "aws", "azure", "router", "controller", "prometheus", "grafana"):
        if s not in services:
            problems.append("docker-compose.yml: no service %s" % s)
    declared_volumes = set((dc.get("volumes") or {}).keys())
    commands = set(re.findall(r'DP_COMMAND\("([\w-]+)"',
                              open(os.path.join(src, "src/cli/commands.def")).read()))
    mounts = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            problems.append("service %s is not a mapping" % name)
            continue
        if "image" not in svc and "build" not in svc:
            problems.append("service %s has neither image nor build" % name)
        for d in svc.get("depends_on") or []:
            if d not in services:
                problems.append("service %s depends on unknown %s" % (name, d))
        for p in svc.get("ports") or []:
            if not re.fullmatch(r"\d+:\d+", str(p)):
                problems.append("service %s: port %r is not HOST:CONTAINER" % (name, p))
        for v in svc.get("volumes") or []:
            parts = str(v).split(":")
            if len(parts) < 2:
                problems.append("service %s: volume %r" % (name, v))
                continue
            host, target = parts[0], parts[1]
            mounts.setdefault(name, {})[target] = host
            if host.startswith("./"):
                if not os.path.exists(os.path.join(src, host[2:])):
                    problems.append("service %s mounts missing %s" % (name, host))
            elif host not in declared_volumes:
                problems.append("service %s uses undeclared volume %s" % (name, host))
        cmd = svc.get("command")
        img = str(svc.get("image", ""))
        if img.startswith("driftpilot:") and isinstance(cmd, list) and svc.get("entrypoint") is None:
            if cmd[0] not in commands:
                problems.append("service %s runs unknown command %s" % (name, cmd[0]))

    # Grafana: provider path holds the mounted dashboard; datasource URL.
    prov = (dbp.get("providers") or [{}])[0]
    path = (prov.get("options") or {}).get("path", "")
    gm = mounts.get("grafana", {})
    if not any(t.startswith(path.rstrip("/") + "/") and h.endswith(".json") for t, h in gm.items()):
        problems.append("grafana: no dashboard JSON mounted under provider path %s" % path)
    if gm.get("/etc/grafana/provisioning") != "./deploy/grafana/provisioning":
        problems.append("grafana: provisioning directory not mounted")
    dsl = ds.get("datasources") or [{}]
    if dsl[0].get("url") != "http://prometheus:9090" or dsl[0].get("type") != "prometheus":
        problems.append("grafana datasource does not point at the prometheus service")
    dash = os.path.join(src, "deploy/grafana/driftpilot-dashboard.json")
    if os.path.exists(dash):
        try:
            json.load(open(dash))
        except ValueError as e:
            problems.append("driftpilot-dashboard.json: %s" % e)

    # Prometheus: the compose scrape config exists and names compose hosts.
    pm = mounts.get("prometheus", {})
    pcfg = pm.get("/etc/prometheus/prometheus.yml")
    if not pcfg:
        problems.append("prometheus: no prometheus.yml mounted")
    else:
        text = open(os.path.join(src, pcfg[2:])).read()
        for host in ("aws:8001", "azure:8002", "router:8080", "controller:9102"):
            if host not in text:
                problems.append("prometheus.yml does not scrape %s" % host)
        for rule in re.findall(r'^\s*-\s*"([^"]+\.yml)"', text, re.M):
            if not os.path.exists(os.path.join(src, "deploy/prometheus", rule)):
                problems.append("prometheus.yml names missing rule file %s" % rule)

    if problems:
        print("\n".join(problems))
        return 1
    print("compose: %d services, %d volumes; grafana provisioning and prometheus config ok"
          % (len(services), len(declared_volumes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
