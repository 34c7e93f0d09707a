"""The house rules of src/, read from the code's own imports (run by ./test.sh).

- no two modules import each other, directly or round a circle;
- only src/db/ names rusqlite, postgres, r2d2 or SQL: everything else goes through the store;
- nothing imports the top of the house (startup, main) except the entry points.
"""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PATH = r"[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*"


def modules():
    """Module name (`db::sqlite`) -> source text without comments and test modules."""
    found = {}
    for p in SRC.rglob("*.rs"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "mod":
            parts = parts[:-1]
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", p.read_text())[0]
        found["::".join(parts)] = re.sub(r"//[^\n]*", "", text)
    return found


def graph(mods):
    def resolve(path):
        segs, best = path.split("::"), None
        for i in range(1, len(segs) + 1):
            if "::".join(segs[:i]) in mods:
                best = "::".join(segs[:i])
        return best

    edges = {m: set() for m in mods}
    for m, text in mods.items():
        targets = []
        for hit in re.finditer(rf"crate::({PATH})(?:::\{{([^}}]*)\}})?", text):
            if hit.group(2):
                targets += [hit.group(1) + "::" + x.strip().split("::")[0].split(" ")[0]
                            for x in hit.group(2).split(",") if x.strip()]
            else:
                targets.append(hit.group(1))
        parent = m.rsplit("::", 1)[0] if "::" in m else ""
        for hit in re.finditer(rf"\bsuper::({PATH})", text):
            targets.append((parent + "::" if parent else "") + hit.group(1))
        for t in targets:
            r = resolve(t)
            # A module reaching into its own children is not a dependency upward.
            if r and r != m and not r.startswith(m + "::") and not m.startswith(r + "::"):
                edges[m].add(r)
    return edges


def circles(edges):
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    edges = graph(modules())
    # If the parser stopped seeing imports, the other tests would pass for nothing.
    assert "db" in edges["routes::users"] and "state" in edges["routes::users"]
    assert "routes::users" in edges["startup"]


def test_no_module_imports_round_a_circle():
    edges = graph(modules())
    found = circles(edges)
    assert not found, "\n".join(
        "circle: " + ", ".join(f"{m} -> {sorted(edges[m] & set(c))}" for m in c) for c in found
    )


def test_only_the_store_speaks_sql():
    sql = re.compile(r"\brusqlite\b|\bpostgres::|\btokio_postgres\w*\b|\br2d2\b|\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET)\b")
    offenders = [
        f"{m}: {hit.group(0)}"
        for m, text in modules().items()
        if m != "db" and not m.startswith("db::")
        for hit in [sql.search(text)]
        if hit
    ]
    assert not offenders, offenders


def test_nothing_imports_the_top_of_the_house():
    entry_points = {"main", "lib", "startup", "testing"}
    edges = graph(modules())
    offenders = [m for m, to in edges.items() if m not in entry_points and to & {"startup", "main"}]
    assert not offenders, offenders
