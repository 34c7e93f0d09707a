"""Admin searches at scale: the median of 5 answers for each request below.

usage: python3 bench/search.py URL TOKEN   (an admin's token: `appmixer-auth token USER`)

The users come from `appmixer-auth users import` of a generated file (SQLite) or an
INSERT ... SELECT FROM generate_series (PostgreSQL); docs/bench.md shows both and the figures.
Prints a markdown row per request: median time, and how many users it answered (or counted).
"""
import json, subprocess, sys, time, statistics, urllib.request
base=sys.argv[1]; token=sys.argv[2]
def get(path):
    req=urllib.request.Request(base+path, headers={"Authorization":"Bearer "+token})
    t=time.perf_counter(); body=urllib.request.urlopen(req).read(); return (time.perf_counter()-t)*1000, body
rows=[]
for path in ["/users?pattern=user99999&limit=100","/users?pattern=nomatch&limit=100","/users?pattern=bench&limit=100","/users?pattern=r0000&limit=100",
             "/users/count?pattern=user99999","/users/count?pattern=nomatch","/users/count?pattern=bench",
             "/users/count?filter=scope:admin","/users/count?filter=plan:pro","/users/count?filter=plan:free","/users?filter=plan:free&limit=100","/users?filter=plan:pro&limit=100",
             "/users?filter=scope:admin&limit=100","/users?sort=created:-1&limit=100","/users?sort=mtime:1&limit=100","/users?sort=plan:-1&limit=100","/users?sort=isActive:1&limit=100","/users?sort=vendor:1&limit=100","/users?sort=email:-1&limit=100",
             "/users?limit=100&offset=900000","/users?sort=username:-1&limit=100&offset=900000","/users?pattern=ab&limit=100","/users/count?pattern=ab","/users/count"]:
    ts=[get(path)[0] for _ in range(5)]
    n=len(json.loads(get(path)[1])) if "count" not in path else json.loads(get(path)[1])["count"]
    rows.append((path, statistics.median(ts), n))
    print(f"| `GET {path}` | {statistics.median(ts):.1f} ms | {n} |", flush=True)
