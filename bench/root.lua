-- GET /: the cheapest JSON route (the version), the ceiling for GET /user.
wrk.method = "GET"
wrk.headers["Accept"] = "application/json"
